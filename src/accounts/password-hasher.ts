import { randomBytes } from 'node:crypto'
import type { Algorithm, Options } from '@node-rs/argon2'
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2'
import { TesseraError } from '../errors.js'
import { createSemaphore } from './semaphore.js'

/**
 * argon2id password hashing (docs/security.md: at least m=19456 KiB, t=2, p=1; rehash on login when
 * the parameters change). Hashes run on libuv's threadpool via @node-rs/argon2; a semaphore caps
 * how many are in flight and how many may wait, so a login flood is refused with `rate_limited`
 * instead of exhausting memory (each hash holds `memoryKiB`) or making every request wait.
 */
export interface Argon2Params {
  memoryKiB: number
  timeCost: number
  parallelism: number
}

/** The production parameters (OWASP's argon2id minimum). */
export const DEFAULT_ARGON2_PARAMS: Readonly<Argon2Params> = Object.freeze({
  memoryKiB: 19456,
  timeCost: 2,
  parallelism: 1,
})

export interface PasswordHasher {
  /** argon2id PHC string, e.g. `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. */
  hash(password: string): Promise<string>
  /** False for a wrong password or a malformed stored hash; rejects only with `rate_limited`. */
  verify(phc: string, password: string): Promise<boolean>
  /** A real verify against a dummy hash of the same parameters: an unknown email costs the same. */
  verifyDummy(password: string): Promise<false>
  /** True when the stored hash is not argon2id v=19 with the configured m, t and p. */
  needsRehash(phc: string): boolean
  stats(): { active: number; queued: number }
}

// `Algorithm` is an ambient const enum (not usable under isolatedModules); 2 is Argon2id.
const ARGON2ID = 2 as Algorithm
const ARGON2_VERSION = 19

export function createPasswordHasher(
  params: Argon2Params,
  opts: { maxConcurrent: number; maxQueued: number },
): PasswordHasher {
  const options: Options = {
    algorithm: ARGON2ID,
    memoryCost: params.memoryKiB,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
  }
  const semaphore = createSemaphore(
    opts.maxConcurrent,
    opts.maxQueued,
    () =>
      new TesseraError('rate_limited', 'Too many password checks in progress', { retryAfter: 1 }),
  )

  const hash = (password: string): Promise<string> =>
    semaphore.run(() => argon2Hash(password, options))

  const verify = (phc: string, password: string): Promise<boolean> =>
    semaphore.run(async () => {
      try {
        return await argon2Verify(phc, password)
      } catch {
        // Malformed or unsupported stored hash: a failed login, never a 500.
        return false
      }
    })

  let dummy: Promise<string> | undefined
  const dummyHash = (): Promise<string> => {
    if (dummy === undefined) {
      const made = hash(randomBytes(32).toString('base64url'))
      dummy = made
      // Do not cache a failure (e.g. rate_limited during a flood): the next call tries again.
      made.catch(() => {
        if (dummy === made) dummy = undefined
      })
    }
    return dummy
  }

  const verifyDummy = async (password: string): Promise<false> => {
    await verify(await dummyHash(), password)
    return false
  }

  const needsRehash = (phc: string): boolean => {
    const p = parsePhc(phc)
    return (
      p === undefined ||
      p.algorithm !== 'argon2id' ||
      p.version !== ARGON2_VERSION ||
      p.m !== params.memoryKiB ||
      p.t !== params.timeCost ||
      p.p !== params.parallelism
    )
  }

  return { hash, verify, verifyDummy, needsRehash, stats: semaphore.stats }
}

interface PhcParams {
  algorithm: string
  version: number
  m: number
  t: number
  p: number
}

/** `$alg$v=19$m=..,t=..,p=..$salt$hash` (version optional: absent means 0x10 = 16). */
function parsePhc(phc: string): PhcParams | undefined {
  const parts = phc.split('$')
  if (parts.length < 5 || parts[0] !== '') return undefined
  const algorithm = parts[1] ?? ''
  let i = 2
  let version = 16
  const v = /^v=(\d+)$/.exec(parts[i] ?? '')
  if (v) {
    version = Number(v[1])
    i++
  }
  const fields = new Map<string, number>()
  for (const kv of (parts[i] ?? '').split(',')) {
    const m = /^([a-z]+)=(\d+)$/.exec(kv)
    if (m) fields.set(m[1] as string, Number(m[2]))
  }
  const m = fields.get('m')
  const t = fields.get('t')
  const p = fields.get('p')
  if (m === undefined || t === undefined || p === undefined) return undefined
  return { algorithm, version, m, t, p }
}
