import type { Algorithm } from '@node-rs/argon2'
import * as argon2 from '@node-rs/argon2'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import {
  type Argon2Params,
  createPasswordHasher,
  DEFAULT_ARGON2_PARAMS,
} from '../../src/accounts/password-hasher.js'
import { normalizePassword } from '../../src/accounts/password-policy.js'
import { TesseraError } from '../../src/errors.js'

// Pass-through spies: every test still runs the real argon2; some count the calls.
vi.mock('@node-rs/argon2', async (importOriginal) => {
  const real = await importOriginal<typeof import('@node-rs/argon2')>()
  return { ...real, hash: vi.fn(real.hash), verify: vi.fn(real.verify) }
})

const small: Argon2Params = { memoryKiB: 1024, timeCost: 1, parallelism: 1 }
const limits = { maxConcurrent: 2, maxQueued: 16 }

beforeEach(() => {
  vi.mocked(argon2.hash).mockClear()
  vi.mocked(argon2.verify).mockClear()
})

async function rejectionOf(p: Promise<unknown>): Promise<TesseraError> {
  const e = await p.then(
    () => {
      throw new Error('expected a rejection')
    },
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(TesseraError)
  return e as TesseraError
}

describe('createPasswordHasher: hash and verify', () => {
  it('hashes with the production defaults', async () => {
    // An argon2id v=19 m=19456,t=2,p=1 PHC string.
    expect(DEFAULT_ARGON2_PARAMS).toEqual({ memoryKiB: 19456, timeCost: 2, parallelism: 1 })
    const hasher = createPasswordHasher(DEFAULT_ARGON2_PARAMS, limits)
    const phc = await hasher.hash('velvet quarry tundra')
    expect(phc.startsWith('$argon2id$v=19$m=19456,t=2,p=1$')).toBe(true)
    expect(await hasher.verify(phc, 'velvet quarry tundra')).toBe(true)
    expect(await hasher.verify(phc, 'velvet quarry tundrA')).toBe(false)
    expect(hasher.needsRehash(phc)).toBe(false)
  })

  it('uses the configured parameters and a fresh salt per hash', async () => {
    const hasher = createPasswordHasher(small, limits)
    const a = await hasher.hash('same password')
    const b = await hasher.hash('same password')
    expect(a.startsWith('$argon2id$v=19$m=1024,t=1,p=1$')).toBe(true)
    expect(a).not.toBe(b)
    expect(await hasher.verify(a, 'same password')).toBe(true)
    expect(await hasher.verify(b, 'same password')).toBe(true)
  })

  it('verifies true for the right password and false for a wrong one (case matters)', async () => {
    const hasher = createPasswordHasher(small, limits)
    const phc = await hasher.hash('CorrectHorse')
    expect(await hasher.verify(phc, 'CorrectHorse')).toBe(true)
    expect(await hasher.verify(phc, 'correcthorse')).toBe(false)
    expect(await hasher.verify(phc, 'CorrectHorse ')).toBe(false)
    expect(await hasher.verify(phc, '')).toBe(false)
  })

  it('verifies the NFKC form whatever form was typed', async () => {
    // Policy output → hash, login → normalizePassword.
    const hasher = createPasswordHasher(small, limits)
    const phc = await hasher.hash(normalizePassword('Ren\u00e9-\uFB01re'))
    expect(await hasher.verify(phc, normalizePassword('Rene\u0301-fire'))).toBe(true)
    expect(await hasher.verify(phc, normalizePassword('Rene-fire'))).toBe(false)
  })

  it('answers false, never throws, for a malformed stored hash, and frees the slot', async () => {
    const hasher = createPasswordHasher(small, { maxConcurrent: 1, maxQueued: 0 })
    const good = await hasher.hash('pw-zq8!vbn')
    const malformed = [
      '',
      'garbage',
      '$argon2id$v=19$m=1024,t=1,p=1$AAAA$BBBB', // hash output too short
      good.slice(0, -10), // truncated
      good.replace('$argon2id$', '$argon2xx$'),
      '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy', // bcrypt
    ]
    for (const phc of malformed) {
      await expect(hasher.verify(phc, 'pw-zq8!vbn')).resolves.toBe(false)
      expect(hasher.stats()).toEqual({ active: 0, queued: 0 })
    }
    // With maxConcurrent 1 and no queue, a leaked slot would make this rate_limited.
    expect(await hasher.verify(good, 'pw-zq8!vbn')).toBe(true)
  })
})

describe('createPasswordHasher: needsRehash', () => {
  it('is false for the configured parameters and true once they change', async () => {
    const phc = await createPasswordHasher(small, limits).hash('pw')
    expect(createPasswordHasher(small, limits).needsRehash(phc)).toBe(false)
    expect(createPasswordHasher({ ...small, memoryKiB: 2048 }, limits).needsRehash(phc)).toBe(true)
    expect(createPasswordHasher({ ...small, timeCost: 2 }, limits).needsRehash(phc)).toBe(true)
    expect(createPasswordHasher({ ...small, parallelism: 2 }, limits).needsRehash(phc)).toBe(true)
  })

  it('still verifies an old-parameter hash, which then needs a rehash', async () => {
    const old = await createPasswordHasher(small, limits).hash('pw-old')
    const upgraded = createPasswordHasher({ memoryKiB: 2048, timeCost: 2, parallelism: 1 }, limits)
    expect(await upgraded.verify(old, 'pw-old')).toBe(true)
    expect(upgraded.needsRehash(old)).toBe(true)
    const fresh = await upgraded.hash('pw-old')
    expect(fresh.startsWith('$argon2id$v=19$m=2048,t=2,p=1$')).toBe(true)
    expect(upgraded.needsRehash(fresh)).toBe(false)
  })

  it('is true for another algorithm or version with the same m, t, p', async () => {
    // And for garbage.
    const hasher = createPasswordHasher(small, limits)
    const opts = { memoryCost: 1024, timeCost: 1, parallelism: 1 }
    const argon2i = await argon2.hash('pw', { ...opts, algorithm: 1 as Algorithm })
    expect(argon2i.startsWith('$argon2i$v=19$m=1024,t=1,p=1$')).toBe(true)
    expect(hasher.needsRehash(argon2i)).toBe(true)
    // Still usable for the login that upgrades it.
    expect(await hasher.verify(argon2i, 'pw')).toBe(true)
    const v16 = await argon2.hash('pw', {
      ...opts,
      algorithm: 2 as Algorithm,
      version: 0 as argon2.Version,
    })
    expect(v16.startsWith('$argon2id$v=16$m=1024,t=1,p=1$')).toBe(true)
    expect(hasher.needsRehash(v16)).toBe(true)
    expect(hasher.needsRehash('garbage')).toBe(true)
    expect(hasher.needsRehash('')).toBe(true)
    expect(hasher.needsRehash('$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy')).toBe(
      true,
    )
  })
})

describe('createPasswordHasher: bounded concurrency', () => {
  it('never has more than maxConcurrent hashes in flight', async () => {
    const hasher = createPasswordHasher(small, { maxConcurrent: 2, maxQueued: 16 })
    const seen: Array<{ active: number; queued: number }> = []
    const observe = () => seen.push(hasher.stats())
    const all: Array<Promise<string>> = []
    for (let i = 0; i < 6; i++) {
      all.push(
        hasher.hash(`password number ${i}`).then((phc) => {
          observe()
          return phc
        }),
      )
      observe()
    }
    expect(hasher.stats()).toEqual({ active: 2, queued: 4 })
    const phcs = await Promise.all(all)
    observe()

    expect(Math.max(...seen.map((s) => s.active))).toBe(2)
    expect(Math.max(...seen.map((s) => s.queued))).toBe(4)
    for (const s of seen) expect(s.active).toBeLessThanOrEqual(2)
    expect(seen.at(-1)).toEqual({ active: 0, queued: 0 })
    // argon2 itself was called once per hash, and each result is a real hash of its input.
    expect(vi.mocked(argon2.hash)).toHaveBeenCalledTimes(6)
    for (const [i, phc] of phcs.entries())
      expect(await argon2.verify(phc, `password number ${i}`)).toBe(true)
  })

  it('rejects with rate_limited (retryAfter 1) when more than maxQueued would wait', async () => {
    const hasher = createPasswordHasher(small, { maxConcurrent: 1, maxQueued: 2 })
    const phc = await hasher.hash('pw-zq8!vbn')
    const accepted = [hasher.hash('a'), hasher.verify(phc, 'pw-zq8!vbn'), hasher.hash('c')]
    expect(hasher.stats()).toEqual({ active: 1, queued: 2 })

    for (const refused of [
      hasher.hash('d'),
      hasher.verify(phc, 'pw-zq8!vbn'),
      hasher.verifyDummy('x'),
    ]) {
      const err = await rejectionOf(refused)
      expect(err.code).toBe('rate_limited')
      expect(err.status).toBe(429)
      expect(err.retryAfter).toBe(1)
      expect(err.detail).toBe('Too many password checks in progress')
    }
    // Refused immediately: the accepted work is still in flight.
    expect(hasher.stats()).toEqual({ active: 1, queued: 2 })

    const [a, ok, c] = await Promise.all(accepted)
    expect(typeof a).toBe('string')
    expect(ok).toBe(true)
    expect(typeof c).toBe('string')
    expect(hasher.stats()).toEqual({ active: 0, queued: 0 })
    // Capacity is back.
    expect(await hasher.verify(phc, 'pw-zq8!vbn')).toBe(true)
  })
})

describe('createPasswordHasher: verifyDummy', () => {
  it('returns false after a real verify against a dummy hash', async () => {
    // Made once with the same params.
    const hasher = createPasswordHasher(small, limits)
    const pending = hasher.verifyDummy('whatever the attacker typed')
    expect(hasher.stats().active).toBe(1) // the dummy hash is made under the cap
    expect(await pending).toBe(false)
    expect(await hasher.verifyDummy('another guess')).toBe(false)
    expect(await Promise.all([hasher.verifyDummy('x'), hasher.verifyDummy('y')])).toEqual([
      false,
      false,
    ])

    // One dummy hash for the hasher's lifetime, one real verify per call.
    expect(vi.mocked(argon2.hash)).toHaveBeenCalledTimes(1)
    const verifyCalls = vi.mocked(argon2.verify).mock.calls
    expect(verifyCalls).toHaveLength(4)
    const dummyPhc = verifyCalls[0]![0] as string
    expect(dummyPhc.startsWith('$argon2id$v=19$m=1024,t=1,p=1$')).toBe(true)
    expect(hasher.needsRehash(dummyPhc)).toBe(false)
    expect(verifyCalls.map((c) => c[0])).toEqual([dummyPhc, dummyPhc, dummyPhc, dummyPhc])
    expect(verifyCalls.map((c) => c[1])).toEqual([
      'whatever the attacker typed',
      'another guess',
      'x',
      'y',
    ])
  })

  it('uses the production parameters for the dummy when configured with them', async () => {
    const hasher = createPasswordHasher(DEFAULT_ARGON2_PARAMS, limits)
    expect(await hasher.verifyDummy('pw')).toBe(false)
    const dummyPhc = vi.mocked(argon2.verify).mock.calls[0]![0] as string
    expect(dummyPhc.startsWith('$argon2id$v=19$m=19456,t=2,p=1$')).toBe(true)
  })

  it('does not cache a failed dummy hash (rate_limited during a flood)', async () => {
    const hasher = createPasswordHasher(small, { maxConcurrent: 1, maxQueued: 0 })
    const busy = hasher.hash('occupies the only slot')
    expect((await rejectionOf(hasher.verifyDummy('x'))).code).toBe('rate_limited')
    await busy
    expect(await hasher.verifyDummy('x')).toBe(false)
    expect(vi.mocked(argon2.verify)).toHaveBeenCalledTimes(1)
  })
})
