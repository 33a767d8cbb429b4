/**
 * The personal access token format the README gives secret scanners: `tsr_pat_` + 36 random
 * base62 characters + 6 base62 characters of their CRC32. A mistyped secret fails its checksum
 * and is refused without a database lookup.
 */
import { crc32 } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import {
  generatePersonalSecret,
  hashPersonalSecret,
  isPersonalSecret,
  PAT_PATTERN,
} from '../../src/personal-tokens/secret.js'

/** The README's regular expression, as written there. */
const README_REGEX = /\btsr_pat_[0-9A-Za-z]{42}\b/

describe('personal access token secrets', () => {
  it('have the documented shape, prefix and checksum', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const { secret, hash, prefix } = generatePersonalSecret()
      expect(secret).toMatch(PAT_PATTERN)
      expect(README_REGEX.exec(`leaked: ${secret}.`)?.[0]).toBe(secret)
      expect(isPersonalSecret(secret)).toBe(true)
      expect(prefix).toBe(secret.slice(0, 12))
      expect(hash).toBe(hashPersonalSecret(secret))
      expect(hash).toMatch(/^[0-9a-f]{64}$/)
      // The check characters are the CRC32 of the random part in base62, zero-padded.
      const random = secret.slice(8, 44)
      let n = 0
      for (const ch of secret.slice(44)) {
        n = n * 62 + '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'.indexOf(ch)
      }
      expect(n).toBe(crc32(random))
      seen.add(secret)
    }
    expect(seen.size).toBe(200)
  })

  it('refuse any changed character, a wrong prefix or length', () => {
    const { secret } = generatePersonalSecret()
    for (let i = 8; i < secret.length; i++) {
      const other = secret[i] === 'a' ? 'b' : 'a'
      expect(isPersonalSecret(secret.slice(0, i) + other + secret.slice(i + 1)), String(i)).toBe(
        false,
      )
    }
    for (const bad of [
      secret.replace('tsr_pat_', 'tsr_pot_'),
      secret.slice(0, -1),
      `${secret}0`,
      secret.toUpperCase(),
      '',
      `tsr_pat_${'-'.repeat(42)}`,
    ]) {
      expect(isPersonalSecret(bad)).toBe(false)
    }
  })
})
