/**
 * `tessera/verify`: verification of Tessera access tokens for Tessera and for resource services.
 * Stands alone: it imports nothing from the rest of Tessera (no database, no argon2, no server).
 */
export { TokenError, type TokenErrorReason } from './errors.js'
export {
  verifyAccessToken,
  type AccessTokenClaims,
  type AccountType,
  type KeyResolver,
  type VerifyOptions,
} from './token.js'
export {
  importPublicKey,
  exportPublicKey,
  verifyV4Public,
  v4Verify,
  type PublicKey,
} from './ed25519.js'
export {
  encodePublicPaserk,
  decodePublicPaserk,
  encodeSecretPaserk,
  decodeSecretPaserk,
  publicKeyId,
} from './paserk.js'
export { formatPasetoTime, parsePasetoTime, PASETO_TIME_PATTERN } from './time.js'
export { parseJsonObjectStrict } from './json.js'
export {
  createRemoteKeySet,
  createLocalKeySet,
  KeySetUnavailableError,
  type KeySet,
  type ConfiguredKey,
  type RemoteKeySetOptions,
} from './key-set.js'
export {
  createVerifier,
  type Verifier,
  type VerifierKeySource,
  type VerifierOptions,
} from './verifier.js'
export {
  auth,
  requireAuth,
  requireVerified,
  requireAccountType,
  type AuthEnv,
  type AuthOptions,
  type PublicRoute,
} from './middleware.js'
