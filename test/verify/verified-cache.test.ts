/**
 * The cache of verified tokens (src/verify/token.ts, `VerifiedTokenCache`; Tessera keeps one per
 * key ring, docs/performance.md): a hit answers exactly what a full verification would, with the
 * time, audience and issuer checks run again and the key looked up again on every call.
 */
import { describe, expect, it } from 'vitest'
import { importPublicKey } from '../../src/paseto/ed25519.js'
import { TokenError } from '../../src/verify/errors.js'
import { VerifiedTokenCache, verifyAccessToken } from '../../src/verify/token.js'
import { issue, NOW, resolveKey, signer, TTL_MS, verifyOptions } from './helpers.js'

const at = (ms: number) => ({ ...verifyOptions, now: () => ms })

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    if (error instanceof TokenError) return error.reason
    throw error
  }
  return 'verified'
}

describe('a cache of verified tokens', () => {
  it('gives the same claims as a full verification, a copy each time', async () => {
    const token = await issue({ amr: ['pwd', 'otp'] })
    const cache = new VerifiedTokenCache(16, () => NOW)
    const plain = await verifyAccessToken(token, resolveKey, verifyOptions)
    const first = await verifyAccessToken(token, resolveKey, verifyOptions, cache)
    first.claims.amr!.push('changed')
    first.claims.sub = 'changed'
    const second = await verifyAccessToken(token, resolveKey, verifyOptions, cache)
    expect(cache.size).toBe(1)
    expect(second).toEqual(plain)
  })

  it('checks expiry, audience and issuer again on a hit', async () => {
    const token = await issue()
    const cache = new VerifiedTokenCache(16, () => NOW)
    await verifyAccessToken(token, resolveKey, verifyOptions, cache)
    expect(
      await reason(verifyAccessToken(token, resolveKey, at(NOW + TTL_MS + 31_000), cache)),
    ).toBe('expired')
    const elsewhere = { ...verifyOptions, audience: 'another-service' }
    expect(await reason(verifyAccessToken(token, resolveKey, elsewhere, cache))).toBe(
      'wrong_audience',
    )
    const issuer = { ...verifyOptions, issuer: 'https://other.example' }
    expect(await reason(verifyAccessToken(token, resolveKey, issuer, cache))).toBe('wrong_issuer')
  })

  it('is no answer once the key is withdrawn or another key answers for its kid', async () => {
    const token = await issue()
    const cache = new VerifiedTokenCache(16, () => NOW)
    await verifyAccessToken(token, resolveKey, verifyOptions, cache)
    expect(await reason(verifyAccessToken(token, () => undefined, verifyOptions, cache))).toBe(
      'unknown_key',
    )
    // A resolver that names a different key for the kid: the signature is checked against it.
    const other = importPublicKey(new Uint8Array(32).fill(7))
    await verifyAccessToken(token, resolveKey, verifyOptions, cache)
    expect(await reason(verifyAccessToken(token, () => other, verifyOptions, cache))).toBe(
      'bad_signature',
    )
    expect(signer.publicKey).not.toBe(other)
  })

  it('keeps no token that did not verify, and holds at most its size', async () => {
    const cache = new VerifiedTokenCache(2, () => NOW)
    const token = await issue()
    expect(await reason(verifyAccessToken(token, () => undefined, verifyOptions, cache))).toBe(
      'unknown_key',
    )
    expect(cache.size).toBe(0)
    for (const jti of ['a', 'b', 'c']) {
      await verifyAccessToken(await issue({ jti }), resolveKey, verifyOptions, cache)
    }
    expect(cache.size).toBe(2)
  })
})
