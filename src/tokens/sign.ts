/**
 * Signing of v4.public access tokens with node:crypto, bound to the `paseto` package's framing
 * through its extension API (the same way `src/verify` verifies). Ed25519 signatures are
 * deterministic: one key, one payload, one footer always give the same token.
 */
import { KeyObject, generateKeyPairSync, sign as ed25519Sign } from 'node:crypto'
import { InvalidKeyError, PublicProtocol, PublicSign, type JsonValue, type Key } from 'paseto'
import { decodeBase64urlStrict } from '../verify/base64url.js'
import { KEY_ALGORITHM, importSecretKeyObject, v4PublicPreAuth } from '../verify/ed25519.js'

/** An Ed25519 signing key: a private node `KeyObject` behind the `paseto` `Key` shape. */
export interface SecretKey extends Key {
  readonly algorithm: { readonly name: typeof KEY_ALGORITHM }
  readonly extractable: false
  readonly type: 'secret'
  readonly keyObject: KeyObject
}

/**
 * A fresh Ed25519 key pair as raw bytes: `publicKey` 32 bytes, `secretKey` 64 bytes
 * (`seed || publicKey`, the PASERK k4.secret layout).
 */
export function generateSigningKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const { privateKey } = generateKeyPairSync('ed25519')
  const jwk = privateKey.export({ format: 'jwk' })
  const publicKey = decodeBase64urlStrict(jwk.x!).slice()
  const secretKey = new Uint8Array(64)
  secretKey.set(decodeBase64urlStrict(jwk.d!), 0)
  secretKey.set(publicKey, 32)
  return { publicKey, secretKey }
}

/**
 * Imports a 64-byte secret key (`seed || publicKey`). Throws `TypeError` on another length or when
 * the public half does not belong to the seed.
 */
export function importSecretKey(sk64: Uint8Array): SecretKey {
  return Object.freeze({
    algorithm: Object.freeze({ name: KEY_ALGORITHM }),
    extractable: false,
    type: 'secret',
    keyObject: importSecretKeyObject(sk64),
  })
}

function assertSecretKey(key: unknown): asserts key is SecretKey {
  const candidate = key as Partial<SecretKey> | null
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    candidate.algorithm?.name !== KEY_ALGORITHM ||
    candidate.type !== 'secret' ||
    !(candidate.keyObject instanceof KeyObject) ||
    candidate.keyObject.type !== 'private' ||
    candidate.keyObject.asymmetricKeyType !== 'ed25519'
  ) {
    throw new InvalidKeyError(`expected a ${KEY_ALGORITHM} secret key`)
  }
}

const v4 = new PublicProtocol(
  PublicSign<4, SecretKey>(
    Object.freeze({
      version: 4,
      run: async (key, message, footer, implicitAssertion) => {
        assertSecretKey(key)
        return ed25519Sign(null, v4PublicPreAuth(message, footer, implicitAssertion), key.keyObject)
      },
    }),
  ),
)

export interface SignOptions {
  /** Authenticated data not carried in the token (PASETO v4 implicit assertion). */
  implicitAssertion?: Uint8Array
}

/**
 * Signs `claims` as a `v4.public.` token with `footer`. The claims are written as given: the
 * caller supplies `exp` (required here, so `paseto`'s default one-hour expiry never applies
 * silently), `iat` and `nbf` as `YYYY-MM-DDTHH:MM:SSZ` (see `formatPasetoTime`); nothing is added.
 */
export async function signV4Public(
  key: SecretKey,
  claims: Record<string, JsonValue>,
  footer: Uint8Array,
  options: SignOptions = {},
): Promise<string> {
  if (typeof claims.exp !== 'string') throw new TypeError('claims must carry an "exp" string')
  // addIssuedAt false: `iat` is the caller's; nonExpiring false without expiresIn: an existing
  // `exp` is kept as it is (paseto only fills in `exp` when absent, or overrides it for expiresIn).
  return v4.Sign(key, claims, {
    footer,
    addIssuedAt: false,
    nonExpiring: false,
    implicitAssertion: options.implicitAssertion ?? new Uint8Array(0),
  })
}
