/**
 * Canonical unpadded base64url (RFC 4648 §5), as PASETO and PASERK require: only the
 * `A-Z a-z 0-9 - _` alphabet, no `=` padding, no `+` or `/`, and zero bits after the last byte
 * (otherwise several strings would decode to the same bytes).
 */
import { Buffer } from 'node:buffer'

const ALPHABET = /^[A-Za-z0-9_-]*$/

/** Value of one base64url character (the caller has already checked the alphabet). */
function sextet(code: number): number {
  if (code >= 65 && code <= 90) return code - 65 // A-Z
  if (code >= 97 && code <= 122) return code - 71 // a-z
  if (code >= 48 && code <= 57) return code + 4 // 0-9
  return code === 45 ? 62 : 63 // '-' or '_'
}

/**
 * Whether `s` is canonical unpadded base64url, checked without decoding (no copy), so a long token
 * payload can be screened before the library decodes it once.
 */
export function isCanonicalBase64url(s: string): boolean {
  if (!ALPHABET.test(s)) return false
  const tail = s.length % 4
  if (tail === 0) return true
  if (tail === 1) return false
  const last = sextet(s.charCodeAt(s.length - 1))
  // 2 chars carry 1 byte (4 spare bits), 3 chars carry 2 bytes (2 spare bits).
  return (last & (tail === 2 ? 0x0f : 0x03)) === 0
}

/** Decodes canonical unpadded base64url; throws `Error` on anything else. */
export function decodeBase64urlStrict(s: string): Uint8Array {
  if (typeof s !== 'string' || !ALPHABET.test(s)) throw new Error('invalid base64url alphabet')
  const bytes = Buffer.from(s, 'base64url')
  // Buffer's decoder is lenient (ignores trailing bits, a dangling character): re-encoding and
  // comparing rejects every non-canonical form.
  if (bytes.toString('base64url') !== s) throw new Error('non-canonical base64url')
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Encodes bytes as unpadded base64url. */
export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}
