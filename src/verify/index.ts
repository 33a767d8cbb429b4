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
// Key-set fetching and the Hono middleware are added beside these.
