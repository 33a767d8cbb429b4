import { createHash, randomBytes } from 'node:crypto'

/** Recognisable prefix, as refresh tokens and login codes have, for secret scanners and people. */
const DEVICE_CODE_PREFIX = 'tessera_dc_'
const DEVICE_CODE_PATTERN = /^tessera_dc_[A-Za-z0-9_-]{43}$/

/**
 * A device code: 256 bits from the CSPRNG, handed to the device only. Its SHA-256 is what the
 * database keeps; nothing to brute-force at that entropy (docs/refresh.md, "Tokens and rows").
 */
export function generateDeviceCode(): { code: string; hash: string } {
  const code = DEVICE_CODE_PREFIX + randomBytes(32).toString('base64url')
  return { code, hash: deviceCodeHash(code) }
}

export function deviceCodeHash(code: string): string {
  return createHash('sha256').update(code, 'utf8').digest('base64url')
}

/** Cheap shape check, so that garbage never reaches a query. */
export function looksLikeDeviceCode(value: string): boolean {
  return DEVICE_CODE_PATTERN.test(value)
}
