/**
 * The sealing under KEY_ENCRYPTION_KEY (src/keys/key-encryption.ts): one derived key per purpose
 * and the row the ciphertext belongs to as authenticated data, so a sealed value opens only with
 * the same key, for the same purpose, on the same row (docs/refresh.md, "The reuse interval").
 */
import { describe, expect, it } from 'vitest'
import {
  decryptSecret,
  encryptSecret,
  type SealPurpose,
  seal,
  unseal,
} from '../../src/keys/key-encryption.js'

const KEK = 'k'.repeat(32)
const REPLAY: SealPurpose = 'refresh-replay v1'

describe('sealing under KEY_ENCRYPTION_KEY', () => {
  it('opens with the same key, purpose and row, and hides the plaintext', () => {
    const sealed = seal(KEK, REPLAY, 'row-1', '{"refresh_token":"tessera_rt_secret"}')
    expect(sealed).not.toContain('tessera_rt_secret')
    expect(unseal(KEK, REPLAY, 'row-1', sealed)).toBe('{"refresh_token":"tessera_rt_secret"}')
    // A fresh IV each time: the same plaintext never seals to the same bytes.
    expect(seal(KEK, REPLAY, 'row-1', 'x')).not.toBe(seal(KEK, REPLAY, 'row-1', 'x'))
  })

  it('does not open with another key, purpose or row, or altered bytes', () => {
    const sealed = seal(KEK, REPLAY, 'row-1', 'answer')
    const [prefix, iv, ciphertext, tag] = [
      sealed.slice(0, 'enc.v1.'.length),
      ...sealed.slice('enc.v1.'.length).split('.'),
    ]
    const flipped = `${ciphertext!.startsWith('A') ? 'B' : 'A'}${ciphertext!.slice(1)}`
    for (const [kek, purpose, row, value] of [
      ['j'.repeat(32), REPLAY, 'row-1', sealed],
      [KEK, 'signing-key-encryption v1', 'row-1', sealed],
      [KEK, REPLAY, 'row-2', sealed],
      [KEK, REPLAY, 'row-1', `${prefix}${iv}.${flipped}.${tag}`],
      [KEK, REPLAY, 'row-1', `${prefix}${iv}.${ciphertext}`],
      [KEK, REPLAY, 'row-1', 'answer'],
      [KEK, REPLAY, 'row-1', `${prefix}...`],
    ] as const) {
      expect(unseal(kek, purpose as SealPurpose, row, value)).toBeUndefined()
    }
  })

  it('a signing key secret and a replay answer never open as each other', () => {
    const secret = encryptSecret(KEK, 'k4.pid.x', 'k4.secret.y')
    expect(decryptSecret(KEK, 'k4.pid.x', secret)).toBe('k4.secret.y')
    expect(unseal(KEK, REPLAY, 'k4.pid.x', secret)).toBeUndefined()
    const answer = seal(KEK, REPLAY, 'k4.pid.x', 'k4.secret.y')
    expect(() => decryptSecret(KEK, 'k4.pid.x', answer)).toThrow(/cannot be decrypted/)
  })
})
