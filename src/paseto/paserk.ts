/**
 * PASERK k4 plaintext keys and public-key ids (paseto-standard/paserk: types `public`, `secret`,
 * `pid`). Decoding is strict: exact prefix, canonical unpadded base64url, exact length. A key of
 * another version (`k3.public.`, a 49-byte P-384 key) is refused rather than guessed at.
 */
import { blake2b } from '@noble/hashes/blake2.js'
import { decodeBase64urlStrict, encodeBase64url } from './base64url.js'
import { importPublicKey, importSecretKeyObject, type PublicKey } from './ed25519.js'

const PUBLIC_PREFIX = 'k4.public.'
const SECRET_PREFIX = 'k4.secret.'
const PID_PREFIX = 'k4.pid.'
const utf8 = new TextEncoder()

function decodeBody(s: string, prefix: string, length: number): Uint8Array {
  if (typeof s !== 'string' || !s.startsWith(prefix)) {
    throw new TypeError(`not a ${prefix.slice(0, -1)} PASERK`)
  }
  let bytes: Uint8Array
  try {
    bytes = decodeBase64urlStrict(s.slice(prefix.length))
  } catch (cause) {
    throw new TypeError(`${prefix.slice(0, -1)} PASERK is not canonical base64url`, { cause })
  }
  if (bytes.byteLength !== length) {
    throw new TypeError(`${prefix.slice(0, -1)} PASERK must hold ${length} bytes`)
  }
  return bytes.slice()
}

/** `k4.public.` + base64url of a raw 32-byte Ed25519 public key. Throws on another length. */
export function encodePublicPaserk(raw: Uint8Array): string {
  if (!(raw instanceof Uint8Array) || raw.byteLength !== 32) {
    throw new TypeError('a k4.public key is 32 bytes')
  }
  return PUBLIC_PREFIX + encodeBase64url(raw)
}

/** The 32 raw bytes of a `k4.public.` PASERK. Throws `TypeError` on anything else. */
export function decodePublicPaserk(s: string): Uint8Array {
  return decodeBody(s, PUBLIC_PREFIX, 32)
}

/** A verification key from a `k4.public.` PASERK. Throws `TypeError` on anything else. */
export function importPublicPaserk(s: string): PublicKey {
  return importPublicKey(decodePublicPaserk(s))
}

/**
 * `k4.secret.` + base64url of a 64-byte Ed25519 secret key (`seed || public key`). Throws when the
 * length is wrong or the public half does not belong to the seed.
 */
export function encodeSecretPaserk(sk64: Uint8Array): string {
  importSecretKeyObject(sk64)
  return SECRET_PREFIX + encodeBase64url(sk64)
}

/** The 64 bytes (`seed || public key`) of a `k4.secret.` PASERK, checked to belong together. */
export function decodeSecretPaserk(s: string): Uint8Array {
  const sk64 = decodeBody(s, SECRET_PREFIX, 64)
  importSecretKeyObject(sk64)
  return sk64
}

/**
 * The PASERK id of a public key: `k4.pid.` + base64url(BLAKE2b-264("k4.pid." + paserk)), a
 * 33-byte BLAKE2b output (the output length is a BLAKE2b parameter, so this is not a truncated
 * BLAKE2b-512). Tessera uses it as the token footer's `kid`. Throws if `publicPaserk` is not a
 * valid `k4.public.` PASERK.
 */
export function publicKeyId(publicPaserk: string): string {
  decodePublicPaserk(publicPaserk)
  const digest = blake2b(utf8.encode(PID_PREFIX + publicPaserk), { dkLen: 33 })
  return PID_PREFIX + encodeBase64url(digest)
}
