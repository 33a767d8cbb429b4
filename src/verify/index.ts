/**
 * `tessera/verify`: verification of Tessera access tokens for Tessera and for resource services.
 * Stands alone: it imports nothing from the rest of Tessera (no database, no argon2, no server).
 */

export {
  exportPublicKey,
  importPublicKey,
  type PublicKey,
  v4Verify,
  verifyV4Public,
} from './ed25519.js'
export { TokenError, type TokenErrorReason } from './errors.js'
export { parseJsonObjectStrict } from './json.js'
export {
  type ConfiguredKey,
  createLocalKeySet,
  createRemoteKeySet,
  type KeySet,
  KeySetUnavailableError,
  type RemoteKeySetOptions,
} from './key-set.js'
export {
  type AuthEnv,
  type AuthOptions,
  auth,
  type PublicRoute,
  requireAccountType,
  requireAuth,
  requireVerified,
} from './middleware.js'
export {
  decodePublicPaserk,
  decodeSecretPaserk,
  encodePublicPaserk,
  encodeSecretPaserk,
  publicKeyId,
} from './paserk.js'
export { formatPasetoTime, PASETO_TIME_PATTERN, parsePasetoTime } from './time.js'
export {
  type AccessTokenClaims,
  type AccountType,
  type KeyResolver,
  type VerifyOptions,
  verifyAccessToken,
} from './token.js'
export {
  createVerifier,
  type Verifier,
  type VerifierKeySource,
  type VerifierOptions,
} from './verifier.js'
