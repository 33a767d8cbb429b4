import { createHash } from 'node:crypto'
import { pooledRandomBytes } from '../keys/random-pool.js'

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

/** 256 bits; from the CSPRNG through a pool (keys/random-pool.ts). */
const TOKEN_BYTES = 32
const tokenBytes = () => pooledRandomBytes(TOKEN_BYTES)

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
