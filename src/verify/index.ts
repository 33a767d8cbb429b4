/**
 * `tessera/verify`: verification of Tessera access tokens for Tessera and for resource services.
 * Stands alone: it imports only itself and the PASETO core in src/paseto (no database, no argon2,
 * no server). It exports what a resource service needs and nothing of the signing side: no secret
 * keys, no signing, no encoders (docs/architecture.md).
 */

export type { PublicKey } from '../paseto/ed25519.js'
export { importPublicPaserk, publicKeyId } from '../paseto/paserk.js'
export { TokenError, type TokenErrorReason } from './errors.js'
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
  requireMfa,
  requireScope,
  requireVerified,
} from './middleware.js'
export {
  type RevocationDocument,
  RevocationDocumentError,
  type RevocationDocumentOptions,
  verifyRevocationDocument,
} from './revocation-document.js'
export {
  type RevocationFeedMode,
  type RevocationOptions,
  type RevocationStatus,
  RevocationsUnavailableError,
} from './revocation-feed.js'
export type { FeedEntry } from './revocation-list.js'
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
