import { createHash, randomFillSync } from 'node:crypto'

/** Recognisable prefix so secret scanners and people can tell what leaked. */
export const REFRESH_TOKEN_PREFIX = 'tessera_rt_'
const TOKEN_PATTERN = /^tessera_rt_[A-Za-z0-9_-]{43}$/

export interface NewRefreshToken {
  /** Handed to the client once; never stored. */
  token: string
  /** What the database keeps. */
  hash: string
}

/** 256 bits from the CSPRNG (RFC 9700 §4.14.2, ASVS 7). */
export function generateRefreshToken(): NewRefreshToken {
  const token = REFRESH_TOKEN_PREFIX + tokenBytes().toString('base64url')
  return { token, hash: hashRefreshToken(token) }
}

const TOKEN_BYTES = 32
/** 128 tokens' worth: one CSPRNG call per 128 refreshes instead of one per refresh. */
const pool = Buffer.alloc(TOKEN_BYTES * 128)
let offset = pool.length

/**
 * The next 32 bytes of a pool filled by the CSPRNG (`crypto.randomFillSync`, as Node pools the
 * bytes of `randomUUID`); each byte is handed out once, and the pool is refilled when it is spent.
 * A call to the CSPRNG per refresh was 4-7 % of the refresh's time (docs/performance.md).
 */
function tokenBytes(): Buffer {
  if (offset === pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const bytes = Buffer.from(pool.subarray(offset, offset + TOKEN_BYTES))
  // The bytes handed out are not kept: the pool's copy is overwritten at once.
  pool.fill(0, offset, offset + TOKEN_BYTES)
  offset += TOKEN_BYTES
  return bytes
}

/**
 * SHA-256 is enough: the input has 256 bits of entropy, so there is nothing to brute-force, and
 * lookups by hash are exact-match index probes, which compare no secret byte by byte.
 */
export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** Cheap shape check so garbage never reaches the database. */
export function looksLikeRefreshToken(value: string): boolean {
  return TOKEN_PATTERN.test(value)
}
