/**
 * Signing of v4.public access tokens with node:crypto. Ed25519 signatures are deterministic: one
 * key, one payload, one footer always give the same token, which is how the official vectors
 * check this code byte for byte (test/verify/vectors.test.ts).
 *
 * The framing is written here rather than through `paseto`'s Sign, for the reason
 * `src/verify/token.ts` gives for verification: on Node 20 the package's pure-JS base64url and
 * claim handling cost about a third of the signature itself, on every login and refresh.
 * Built on the PASETO core in src/paseto (PAE, base64url, Ed25519 keys), as the verifier is:
 * tessera/verify carries nothing of signing (docs/architecture.md).
 */
import { Buffer } from 'node:buffer'
import { sign as ed25519Sign, generateKeyPairSync, KeyObject } from 'node:crypto'
import { InvalidKeyError, type JsonValue, type Key } from 'paseto'
import { decodeBase64urlStrict, encodeBase64url } from '../paseto/base64url.js'
import { importSecretKeyObject, KEY_ALGORITHM } from '../paseto/ed25519.js'
import { V4_PUBLIC_HEADER, v4PublicPreAuth } from '../paseto/pae.js'

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
  return secretKeyOf(importSecretKeyObject(sk64))
}

/**
 * The signing key around an Ed25519 private `KeyObject`: one `importSecretKey` made, which another
 * thread was handed (a `KeyObject` survives `postMessage`, the `SecretKey` around it does not).
 */
export function secretKeyOf(keyObject: KeyObject): SecretKey {
  if (keyObject.type !== 'private' || keyObject.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('a signing key is a private Ed25519 key')
  }
  return Object.freeze({
    algorithm: Object.freeze({ name: KEY_ALGORITHM }),
    extractable: false,
    type: 'secret',
    keyObject,
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

export interface SignOptions {
  /** Authenticated data not carried in the token (PASETO v4 implicit assertion). */
  implicitAssertion?: Uint8Array
}

const HEADER = Buffer.from(V4_PUBLIC_HEADER).toString('latin1')
const NO_BYTES = new Uint8Array(0)

/**
 * Signs `claims` as a `v4.public.` token with `footer`. The claims are written as given, in their
 * key order: the caller supplies `exp` (required: nothing without an expiry is ever signed), `iat`
 * and `nbf` as `YYYY-MM-DDTHH:MM:SSZ` (see `formatPasetoTime`); nothing is added.
 */
export async function signV4Public(
  key: SecretKey,
  claims: Record<string, JsonValue>,
  footer: Uint8Array,
  options: SignOptions = {},
): Promise<string> {
  return signV4PublicSync(key, claims, footer, options)
}

/**
 * `signV4Public`, synchronously (node:crypto's Ed25519 `sign` is synchronous): for a caller inside
 * a synchronous SQLite transaction, where nothing may await (src/sessions/sqlite-rotation.ts).
 * Throws where `signV4Public` rejects.
 */
export function signV4PublicSync(
  key: SecretKey,
  claims: Record<string, JsonValue>,
  footer: Uint8Array,
  options: SignOptions = {},
): string {
  assertSecretKey(key)
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    throw new TypeError('claims must be a JSON object')
  }
  if (typeof claims.exp !== 'string') throw new TypeError('claims must carry an "exp" string')
  const message = Buffer.from(JSON.stringify(claims), 'utf8')
  const signature = ed25519Sign(
    null,
    v4PublicPreAuth(message, footer, options.implicitAssertion ?? NO_BYTES),
    key.keyObject,
  )
  const body = Buffer.concat([message, signature]).toString('base64url')
  return footer.byteLength === 0
    ? `${HEADER}${body}`
    : `${HEADER}${body}.${encodeBase64url(footer)}`
}
