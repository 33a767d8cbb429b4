import { dictionary } from '@zxcvbn-ts/language-common'
import { describe, expect, it } from 'vitest'
import {
  checkPasswordPolicy,
  DEFAULT_PASSWORD_POLICY,
  isCommonPassword,
  normalizePassword,
  type PasswordPolicy,
} from '../../src/accounts/password-policy.js'
import { TesseraError } from '../../src/errors.js'

const policy: PasswordPolicy = { minLength: 8, maxLength: 1024 }
const common = new Set(dictionary['passwords-common'])

/** The TesseraError `fn` throws (fails the test when it does not throw one). */
function rejection(fn: () => unknown): TesseraError {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError)
    return e as TesseraError
  }
  throw new Error('expected a TesseraError, nothing was thrown')
}

/** `n` distinct-enough code points cycling through ASCII, BMP and astral characters. */
function codePoints(n: number, alphabet = ['a', '🦊', 'é', '7', '𝄞', 'Z', '中', '🙂']): string {
  let s = ''
  for (let i = 0; i < n; i++) s += alphabet[i % alphabet.length]
  return s
}

describe('checkPasswordPolicy: length in code points of the NFKC form', () => {
  it('defaults to min 8 and max 1024', () => {
    expect(DEFAULT_PASSWORD_POLICY).toEqual({ minLength: 8, maxLength: 1024 })
    expect(checkPasswordPolicy('zq8!vbn#')).toBe('zq8!vbn#')
    expect(rejection(() => checkPasswordPolicy('zq8!vbn')).code).toBe('weak_password')
  })

  it('rejects 7 and accepts 8 code points, saying the minimum', () => {
    const err = rejection(() => checkPasswordPolicy('zq8!vbn', policy))
    expect(err.code).toBe('weak_password')
    expect(err.detail).toMatch(/too short/i)
    expect(err.detail).toContain('8')
    expect(err.detail).not.toContain('zq8!vbn')
    expect(checkPasswordPolicy('zq8!vbn#', policy)).toBe('zq8!vbn#')
  })

  it('counts an astral character (emoji) as one code point, not two UTF-16 units', () => {
    const seven = '🦊🐙🦉🐝🦋🐢🦀' // 14 UTF-16 units
    expect(seven.length).toBe(14)
    expect(rejection(() => checkPasswordPolicy(seven, policy)).detail).toMatch(/too short/i)
    const eight = `${seven}🐳`
    expect(checkPasswordPolicy(eight, policy)).toBe(eight)
  })

  it('accepts 1024 and rejects 1025 code points, saying the maximum', () => {
    const max = codePoints(1024)
    expect(max.length).toBeGreaterThan(1024) // astral characters: UTF-16 length is larger
    expect(checkPasswordPolicy(max, policy)).toBe(max)
    // 1024 emoji = 2048 UTF-16 units, still 1024 code points.
    const emoji = codePoints(1024, ['🦊', '🐙', '🦉', '🐝'])
    expect(checkPasswordPolicy(emoji, policy)).toBe(emoji)

    const err = rejection(() => checkPasswordPolicy(codePoints(1025), policy))
    expect(err.code).toBe('weak_password')
    expect(err.detail).toMatch(/too long/i)
    expect(err.detail).toContain('1024')
  })

  it('never truncates: a long password comes back whole', () => {
    const long = `${'x'.repeat(100)}tail-that-must-survive`
    expect(checkPasswordPolicy(long, policy)).toBe(long)
  })

  it('honours a configured minimum and maximum', () => {
    const strict: PasswordPolicy = { minLength: 12, maxLength: 64 }
    const err = rejection(() => checkPasswordPolicy('zq8!vbn#mk3', strict))
    expect(err.detail).toContain('12')
    expect(checkPasswordPolicy('zq8!vbn#mk3%', strict)).toBe('zq8!vbn#mk3%')
    expect(checkPasswordPolicy(codePoints(64), strict)).toBe(codePoints(64))
    expect(rejection(() => checkPasswordPolicy(codePoints(65), strict)).detail).toContain('64')
  })

  it('measures after NFKC: expansion and composition both count in the normalised form', () => {
    // U+FB03 "ﬃ" is 1 code point raw and 3 after NFKC: 3 of them pass a minimum of 8.
    expect(checkPasswordPolicy('\uFB03\uFB03\uFB03', policy)).toBe('ffiffiffi')
    // 342 × 3 = 1026 after NFKC: too long although only 342 raw.
    expect(rejection(() => checkPasswordPolicy('\uFB03'.repeat(342), policy)).detail).toMatch(
      /too long/i,
    )
    // e + U+0301 composes to é: 2048 raw code points, 1024 after NFKC.
    const decomposed = codePoints(1024, ['e\u0301', 'a\u0300'])
    expect([...decomposed].length).toBe(2048)
    expect(checkPasswordPolicy(decomposed, policy)).toBe(decomposed.normalize('NFC'))
  })

  it('refuses an enormous input as too long', () => {
    const err = rejection(() => checkPasswordPolicy('ab'.repeat(1_000_000), policy))
    expect(err.code).toBe('weak_password')
    expect(err.detail).toMatch(/too long/i)
  })
})

describe('checkPasswordPolicy: NFKC, no case folding, no composition rules', () => {
  it('returns the NFKC form: fullwidth and ligature forms equal their plain forms', () => {
    expect(checkPasswordPolicy('ｈｏｒｓｅｂａｔｔｅｒｙ', policy)).toBe('horsebattery')
    expect(checkPasswordPolicy('\uFB01rework-zq8', policy)).toBe('firework-zq8')
    expect(normalizePassword('ｈｏｒｓｅｂａｔｔｅｒｙ')).toBe(normalizePassword('horsebattery'))
    expect(normalizePassword('Ren\u00e9-zq8!')).toBe(normalizePassword('Rene\u0301-zq8!'))
  })

  it('does not case-fold the password itself', () => {
    expect(checkPasswordPolicy('CorrectHorseBattery', policy)).toBe('CorrectHorseBattery')
    expect(normalizePassword('AbC')).toBe('AbC')
  })

  it('has no composition rules: lowercase-only and digits-only are fine when not common', () => {
    expect(common.has('correcthorsebatterystaple')).toBe(false)
    expect(checkPasswordPolicy('correcthorsebatterystaple', policy)).toBe(
      'correcthorsebatterystaple',
    )
    expect(common.has('83920175')).toBe(false)
    expect(checkPasswordPolicy('83920175', policy)).toBe('83920175')
  })

  it('accepts a long random passphrase', () => {
    const phrase = 'velvet-Quarry 93 tundra_lantern? oboe&mosaic'
    expect(checkPasswordPolicy(phrase, policy)).toBe(phrase)
  })

  it('rejects a single repeated character, saying why', () => {
    for (const p of ['zzzzzzzz', '🦊🦊🦊🦊🦊🦊🦊🦊', 'ｚｚｚｚｚｚｚｚｚ']) {
      const err = rejection(() => checkPasswordPolicy(p, policy))
      expect(err.code).toBe('weak_password')
      expect(err.detail).toMatch(/repeated/i)
    }
    // Two different characters are not "a single repeated character".
    expect(checkPasswordPolicy('zzzzzzzy', policy)).toBe('zzzzzzzy')
  })
})

describe('checkPasswordPolicy: common-password blocklist', () => {
  it.each(['password', 'Password', 'PASSWORD', '12345678', 'iloveyou', 'trustno1'])(
    'rejects %j as a commonly used password',
    (p) => {
      const err = rejection(() => checkPasswordPolicy(p, policy))
      expect(err.code).toBe('weak_password')
      expect(err.status).toBe(400)
      expect(err.detail).toMatch(/commonly used passwords/)
      // The reason never echoes the password ("password" itself is a word of the reason).
      if (!/password/i.test(p)) expect(err.detail).not.toContain(p)
    },
  )

  it('rejects the NFKC (fullwidth) form of a common password', () => {
    expect(rejection(() => checkPasswordPolicy('ｐａｓｓｗｏｒｄ', policy)).detail).toMatch(
      /common/,
    )
  })

  it('uses the whole list, not just its head', () => {
    const list = dictionary['passwords-common']
    expect(list.length).toBeGreaterThan(40_000)
    const late = [...list].reverse().find((p) => [...p].length >= 8 && new Set(p).size > 1)
    expect(late).toBeDefined()
    expect(list.indexOf(late!)).toBeGreaterThan(40_000)
    expect(rejection(() => checkPasswordPolicy(late!, policy)).detail).toMatch(/common/)
    expect(isCommonPassword(late!.toUpperCase())).toBe(true)
    expect(isCommonPassword('correcthorsebatterystaple')).toBe(false)
  })
})
