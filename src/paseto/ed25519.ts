/**
 * Ed25519 for PASETO v4.public with node:crypto. `verifyV4Signature` is the one signature check:
 * bound into the `paseto` package's framing and claim validation through its extension API for
 * `verifyV4Public` (what the official vectors exercise), and called directly by
 * `verifyAccessToken` (src/verify/token.ts). node:crypto's synchronous `verify` is used rather
 * than WebCrypto: it is about twice as fast per call (docs/performance.md), and verification is on
 * every request. Secret keys are imported here too, for the signer (src/tokens/sign.ts) and
 * PASERK; nothing about them is exported by `tessera/verify`.
 */
import { createPrivateKey, createPublicKey, verify as ed25519Verify, KeyObject } from 'node:crypto'
import {
  type ConsumeOptions,
  InvalidKeyError,
  type Key,
  PublicProtocol,
  PublicVerify,
  type TokenResult,
} from 'paseto'
import { encodeBase64url } from './base64url.js'
import { v4PublicPreAuth } from './pae.js'

export const KEY_ALGORITHM = 'tessera-ed25519'

/** An Ed25519 verification key: a node `KeyObject` behind the `paseto` `Key` shape. */
export interface PublicKey extends Key {
  readonly algorithm: { readonly name: typeof KEY_ALGORITHM }
  readonly extractable: false
  readonly type: 'public'
  readonly keyObject: KeyObject
}

/** Imports a raw 32-byte Ed25519 public key. Throws `TypeError` on any other length. */
export function importPublicKey(raw32: Uint8Array): PublicKey {
  if (!(raw32 instanceof Uint8Array) || raw32.byteLength !== 32) {
    throw new TypeError('an Ed25519 public key is 32 bytes')
  }
  const keyObject = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: encodeBase64url(raw32) },
    format: 'jwk',
  })
  return Object.freeze({
    algorithm: Object.freeze({ name: KEY_ALGORITHM }),
    extractable: false,
    type: 'public',
    keyObject,
  })
}

/**
 * Imports a 64-byte Ed25519 secret key (`seed || public key`, the PASERK k4.secret layout) as a
 * private `KeyObject`. Throws `TypeError` on another length or when the public half does not belong
 * to the seed (node:crypto would silently ignore a wrong one and derive its own).
 */
export function importSecretKeyObject(sk64: Uint8Array): KeyObject {
  if (!(sk64 instanceof Uint8Array) || sk64.byteLength !== 64) {
    throw new TypeError('an Ed25519 secret key is 64 bytes (seed and public key)')
  }
  const x = encodeBase64url(sk64.subarray(32))
  const keyObject = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: encodeBase64url(sk64.subarray(0, 32)), x },
    format: 'jwk',
  })
  if (createPublicKey(keyObject).export({ format: 'jwk' }).x !== x) {
    throw new TypeError('the public half of the secret key does not match its seed')
  }
  return keyObject
}

/** Throws `InvalidKeyError` unless `key` is a public key made by `importPublicKey`. */
export function assertPublicKey(key: unknown): asserts key is PublicKey {
  const candidate = key as Partial<PublicKey> | null
  if (
    candidate === null ||
    typeof candidate !== 'object' ||
    candidate.algorithm?.name !== KEY_ALGORITHM ||
    candidate.type !== 'public' ||
    !(candidate.keyObject instanceof KeyObject) ||
    // A private KeyObject would also verify (node derives its public half): refuse it.
    candidate.keyObject.type !== 'public' ||
    candidate.keyObject.asymmetricKeyType !== 'ed25519'
  ) {
    throw new InvalidKeyError(`expected a ${KEY_ALGORITHM} public key`)
  }
}

/**
 * Checks a v4.public signature over `PAE(["v4.public.", message, footer, implicit])`,
 * synchronously. Only the signature: no framing, no claims.
 */
export function verifyV4Signature(
  key: PublicKey,
  message: Uint8Array,
  signature: Uint8Array,
  footer: Uint8Array,
  implicitAssertion: Uint8Array,
): boolean {
  assertPublicKey(key)
  return ed25519Verify(
    null,
    v4PublicPreAuth(message, footer, implicitAssertion),
    key.keyObject,
    signature,
  )
}

/** The `paseto` Verify capability for v4.public, with node:crypto underneath. */
const v4Verify = PublicVerify<4, PublicKey>(
  Object.freeze({
    version: 4,
    run: async (key, message, signature, footer, implicitAssertion) =>
      verifyV4Signature(key, message, signature, footer, implicitAssertion),
  }),
)

const v4 = new PublicProtocol(v4Verify)

/**
 * Verifies any `v4.public.` token with `paseto`'s framing and claim rules: header, canonical
 * base64url, signature (with `options.implicitAssertion`), then a JSON-object payload and `exp`
 * (required unless `allowNonExpiring`), `nbf`, `iat`, plus `issuer`/`audience`/... when given.
 * It does not reject duplicate JSON keys, does not look inside the footer and accepts any RFC 3339
 * form; for access tokens use `verifyAccessToken`, which adds those rules. Errors are `paseto`'s
 * (`InvalidTokenError`, `ClaimValidationError`, `InvalidKeyError`).
 */
export function verifyV4Public(
  key: PublicKey,
  token: string,
  options?: ConsumeOptions<4>,
): Promise<TokenResult> {
  return v4.Verify(key, token, options)
}
