import { createHash, randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'

/**
 * A personal access token's secret (README, "Scripts, pipelines and services"):
 * `tsr_pat_` + 36 random base62 characters (about 214 bits) + 6 base62 characters of the CRC32
 * of those 36. The prefix tells a secret scanner, and a person, what leaked; the checksum lets a
 * scanner drop near misses offline, and lets Tessera refuse a mistyped one without a lookup.
 */
export const PAT_PREFIX = 'tsr_pat_'
const RANDOM_CHARS = 36
const CHECK_CHARS = 6
/** The exact shape, as the README gives it to secret scanners. */
export const PAT_PATTERN = /^tsr_pat_[0-9A-Za-z]{42}$/
/** How much of a secret the list shows: the prefix and four random characters. */
const SHOWN_CHARS = PAT_PREFIX.length + 4
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

export interface NewPersonalSecret {
  /** Shown to the user once; never stored. */
  secret: string
  /** What the database keeps. */
  hash: string
  /** What the list shows. */
  prefix: string
}

/** Uniform base62 from the CSPRNG: bytes of 248 and above are dropped (248 = 4 * 62). */
function randomBase62(length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62]
    }
  }
  return out
}

function base62Check(random: string): string {
  let n = crc32(random)
  let out = ''
  for (let i = 0; i < CHECK_CHARS; i++) {
    out = BASE62[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

export function generatePersonalSecret(): NewPersonalSecret {
  const random = randomBase62(RANDOM_CHARS)
  const secret = PAT_PREFIX + random + base62Check(random)
  return { secret, hash: hashPersonalSecret(secret), prefix: secret.slice(0, SHOWN_CHARS) }
}

/**
 * SHA-256 is right for a secret of over 200 random bits: nothing to brute-force, and the lookup
 * by hash is an exact index probe that compares no secret byte by byte.
 */
export function hashPersonalSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

/** The shape and the checksum: anything else is not a Tessera PAT, and costs no query. */
export function isPersonalSecret(value: string): boolean {
  if (!PAT_PATTERN.test(value)) return false
  const random = value.slice(PAT_PREFIX.length, PAT_PREFIX.length + RANDOM_CHARS)
  return value.slice(PAT_PREFIX.length + RANDOM_CHARS) === base62Check(random)
}
