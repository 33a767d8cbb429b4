import { randomBytes } from 'node:crypto'
import { PAE } from 'paseto'
import { describe, expect, it } from 'vitest'
import { decodeBase64urlStrict, isCanonicalBase64url } from '../../src/paseto/base64url.js'
import { V4_PUBLIC_HEADER, v4PublicPreAuth } from '../../src/paseto/pae.js'
import { formatPasetoTime, parsePasetoTime } from '../../src/paseto/time.js'

describe('only canonical unpadded base64url decodes', () => {
  it('accepts exactly what Buffer encodes', () => {
    for (let length = 0; length < 40; length++) {
      const bytes = randomBytes(length)
      const text = bytes.toString('base64url')
      expect(isCanonicalBase64url(text)).toBe(true)
      expect(Buffer.from(decodeBase64urlStrict(text))).toEqual(bytes)
    }
  })

  it('refuses padding, the +/ alphabet, other characters, dangling and non-zero bits', () => {
    const bad = ['AA==', 'AAA=', 'AB', 'AAB', 'A', 'AAAAA', '+w', '/w', 'A A', 'AA\n', 'Zg=', 'é']
    for (const text of bad) {
      expect(isCanonicalBase64url(text), text).toBe(false)
      expect(() => decodeBase64urlStrict(text), text).toThrow()
    }
  })
})

describe('v4PublicPreAuth is PAE(["v4.public.", m, f, i])', () => {
  it("equals paseto's PAE byte for byte", () => {
    for (const [m, f, i] of [
      [0, 0, 0],
      [1, 0, 0],
      [420, 60, 0],
      [255, 256, 257],
      [70_000, 3, 17],
    ] as const) {
      const message = randomBytes(m)
      const footer = randomBytes(f)
      const implicit = randomBytes(i)
      expect(Buffer.from(v4PublicPreAuth(message, footer, implicit))).toEqual(
        Buffer.from(PAE([V4_PUBLIC_HEADER, message, footer, implicit])),
      )
    }
  })
})

describe('PASETO times are YYYY-MM-DDTHH:MM:SSZ', () => {
  it('formats whole seconds in UTC, truncating', () => {
    expect(formatPasetoTime(Date.UTC(2026, 4, 1, 12, 0, 0, 999))).toBe('2026-05-01T12:00:00Z')
    expect(formatPasetoTime(0)).toBe('1970-01-01T00:00:00Z')
    expect(formatPasetoTime(-1)).toBe('1969-12-31T23:59:59Z')
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 8.64e15, Date.UTC(10000, 0, 1)]) {
      expect(() => formatPasetoTime(bad)).toThrow(RangeError)
    }
  })

  it('parses exactly that form, real instants only', () => {
    expect(parsePasetoTime('2026-05-01T12:00:00Z')).toBe(Date.UTC(2026, 4, 1, 12, 0, 0))
    expect(parsePasetoTime('2024-02-29T23:59:59Z')).toBe(Date.UTC(2024, 1, 29, 23, 59, 59))
    expect(parsePasetoTime('0050-01-01T00:00:00Z')).toBe(new Date('0050-01-01T00:00:00Z').getTime())
    for (const bad of [
      '2025-02-29T00:00:00Z',
      '2100-02-29T00:00:00Z',
      '2026-04-31T00:00:00Z',
      '2026-00-01T00:00:00Z',
      '2026-05-01T24:00:00Z',
      '2026-05-01T23:60:00Z',
      '2026-05-01T23:59:60Z',
      '2026-05-01T12:00:00.000Z',
      '2026-05-01T12:00:00+00:00',
      '2026-05-01T12:00:00z',
      '2026-05-01T12:00:00',
      ' 2026-05-01T12:00:00Z',
      '2026-05-01T12:00:00Z ',
      '2026-05-01T12:00:0aZ',
      '2026-05-01T1 :00:00Z',
      '-026-05-01T12:00:00Z',
      '2026-05-01T12:00:0-Z',
      '２０２６-05-01T12:00:00Z',
      '2026/05/01T12:00:00Z',
      '',
    ]) {
      expect(parsePasetoTime(bad), bad).toBeUndefined()
    }
    // Whole seconds from year 0005 to about 9800 round-trip.
    for (let i = 0; i < 200; i++) {
      const ms = (Math.floor(Math.random() * 3.1e11) - 6.2e10) * 1000
      expect(parsePasetoTime(formatPasetoTime(ms))).toBe(ms)
    }
  })
})
