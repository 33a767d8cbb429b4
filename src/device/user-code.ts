import { createHmac, hkdfSync, randomInt } from 'node:crypto'

/**
 * User codes (RFC 8628 §6.1): 8 letters from the 20 consonants below, which cannot spell words
 * and survive being read aloud or typed on a phone. 20^8 ≈ 2.6 × 10^10 codes, about 34.5 bits:
 * enough against online guessing under the entry limit (README, "Device login"), far too little
 * against an offline search, so they are stored keyed (HMAC), never as a plain hash.
 */
export const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ'
export const USER_CODE_LENGTH = 8

/** A fresh code, without its dash; randomInt draws each letter without modulo bias. */
export function generateUserCode(): string {
  let code = ''
  for (let i = 0; i < USER_CODE_LENGTH; i++) code += USER_CODE_ALPHABET[randomInt(20)]
  return code
}

/** How a code is shown: `XXXX-XXXX`. */
export function formatUserCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`
}

const TYPED = /^[A-Za-z]{8}$/
const CANONICAL = new RegExp(`^[${USER_CODE_ALPHABET}]{${USER_CODE_LENGTH}}$`)

/**
 * The code a person typed, ignoring case, dashes and spaces (`bcdf-ghjk`, `BCDF GHJK`), or
 * undefined when it cannot be one. ASCII letters only, checked before upper-casing, so no
 * Unicode case mapping (`ſ` → `S`) makes two inputs one code.
 */
export function normalizeUserCode(input: string): string | undefined {
  if (input.length > 64) return undefined
  const letters = input.replace(/[\s-]/g, '')
  if (!TYPED.test(letters)) return undefined
  const upper = letters.toUpperCase()
  return CANONICAL.test(upper) ? upper : undefined
}

/**
 * The stored form of a normalised code: HMAC-SHA256 under a key derived (HKDF-SHA256) from the
 * key-encryption key with a label of its own, apart from the signing-key encryption key
 * (src/keys/key-encryption.ts). Someone holding a copy of the database but not the
 * key-encryption key cannot test candidate codes against it.
 */
export function userCodeHash(keyEncryptionKey: string | undefined, code: string): string {
  if (keyEncryptionKey === undefined) {
    // createTessera always resolves one (configured, or generated beside an SQLite file).
    throw new Error('no key-encryption key: cannot key user codes')
  }
  const key = Buffer.from(
    hkdfSync('sha256', keyEncryptionKey, 'tessera', 'device-user-code-hmac v1', 32),
  )
  return createHmac('sha256', key).update(code, 'utf8').digest('base64url')
}
