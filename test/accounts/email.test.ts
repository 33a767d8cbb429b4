import { describe, expect, it } from 'vitest'
import { normalizeEmail } from '../../src/accounts/email.js'

describe('normalizeEmail', () => {
  it('keeps the trimmed form as typed and lower-cases the key', () => {
    expect(normalizeEmail('  Alice.Smith@Example.COM \n')).toEqual({
      email: 'Alice.Smith@Example.COM',
      normalized: 'alice.smith@example.com',
    })
  })

  it('applies NFKC before lower-casing', () => {
    // Fullwidth letters and the "ﬁ" ligature fold to their ASCII forms.
    expect(normalizeEmail('ＡＬＩＣＥ@ex.com').normalized).toBe('alice@ex.com')
    expect(normalizeEmail('ﬁona@ex.com').normalized).toBe('fiona@ex.com')
    // Decomposed é (e + U+0301) and precomposed é give the same key.
    expect(normalizeEmail('Rene\u0301@ex.com').normalized).toBe(
      normalizeEmail('REN\u00c9@ex.com').normalized,
    )
    // The typed form is not normalised.
    expect(normalizeEmail('ＡＬＩＣＥ@ex.com').email).toBe('ＡＬＩＣＥ@ex.com')
  })

  it('lower-cases, never upper-cases (ß stays ß, not ss)', () => {
    expect(normalizeEmail('Straße@ex.de').normalized).toBe('straße@ex.de')
    expect(normalizeEmail('Straße@ex.de').normalized).not.toBe(
      normalizeEmail('STRASSE@ex.de').normalized,
    )
  })
})
