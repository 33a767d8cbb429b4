/**
 * The refresh rule as a table (README, "Tokens"; docs/refresh.md): `rotateRefreshToken` on a fresh
 * database per dialect with a test clock, one row per rule, asserting the outcome and the rows it
 * leaves. The HTTP tests beside it (refresh.test.ts, refresh-hardening.test.ts) prove the same
 * rules through the API, under concurrency.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerAccount } from '../../src/accounts/accounts.js'
import { loadConfig } from '../../src/config/index.js'
import { TesseraError } from '../../src/errors.js'
import { rotateRefreshToken } from '../../src/sessions/refresh.js'
import { generateRefreshToken, hashRefreshToken } from '../../src/sessions/refresh-token.js'
import { revokeFamily, startSession } from '../../src/sessions/sessions.js'
import { createTessera, type Tessera } from '../../src/tessera.js'
import { FAST_HASHING, type TestClock, testClock, testKeyEnv } from '../support/app.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { PASSWORD, uniqueEmail } from '../support/users.js'

const CLIENT = { ip: '192.0.2.7', userAgent: 'rotation-rule-test' }
/** The reuse interval of the rows that use one (REFRESH_REUSE_INTERVAL), in seconds. */
const INTERVAL = 10
const REFRESH_TTL_MS = 2_592_000 * 1000

type Status = 'active' | 'rotated' | 'superseded' | 'revoked'
type Outcome =
  | 'rotated'
  | 'replayed'
  | 'refresh_token_reused'
  | 'invalid_refresh_token'
  | 'rate_limited'

/** One login session under test: its tokens by the names the rows give them. */
interface Family {
  userId: string
  sessionId: string
  tokens: Map<string, string>
}

interface Rule {
  rule: string
  /** REFRESH_REUSE_INTERVAL in seconds; 0 (strict) unless set. */
  interval?: number
  /** RATE_LIMIT_REFRESH_PER_SESSION; 0 (off) unless set. */
  limit?: number
  /** Brings the family (login token `t0`) to the state the rule is about. */
  arrange?: (f: Family, t: Tessera, clock: TestClock) => Promise<void>
  /** The name of the token presented; `unknown` is one the database never saw. */
  present: string
  outcome: Outcome
  /** Every token of the family afterwards; `next` is the one a rotation issued. */
  tokens?: Record<string, Status>
  /** The session afterwards: live, or the reason it was revoked. */
  session?: 'live' | 'refresh_token_reused' | 'logout'
  /**
   * A refusal after the session lock rolls back, and so does a replay: every row is as it was
   * before.
   */
  unchanged?: true
  /** `replayed`: the token whose answer comes back. */
  replays?: string
}

const rules: Rule[] = [
  {
    rule: 'an active token rotates: it is spent, its child is active',
    present: 't0',
    outcome: 'rotated',
    tokens: { t0: 'rotated', next: 'active' },
    session: 'live',
  },
  {
    rule: 'with an interval, a rotation keeps its answer and its parent forgets the one it kept',
    interval: INTERVAL,
    arrange: (f, t) => rotate(t, f, 't0', 't1'),
    present: 't1',
    outcome: 'rotated',
    tokens: { t0: 'rotated', t1: 'rotated', next: 'active' },
    session: 'live',
  },
  {
    rule: 'a rotated token again is reuse: the family is revoked',
    arrange: (f, t) => rotate(t, f, 't0', 't1'),
    present: 't0',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    rule: 'a rotated token of a family revoked for reuse is reuse again',
    arrange: async (f, t) => {
      await rotate(t, f, 't0', 't1')
      await expectOutcome(
        rotateRefreshToken(depsFor(t, {}), f.tokens.get('t0')!, CLIENT),
        'refresh_token_reused',
      )
    },
    present: 't0',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    // Tessera before migration 0009 superseded the unused child when the parent was presented
    // again inside the interval, and issued another; such rows may still exist.
    rule: 'a superseded token (left by the earlier reuse interval) is reuse, even inside it',
    interval: INTERVAL,
    arrange: async (f, t, clock) => {
      await rotate(t, f, 't0', 'lost')
      await supersede(t, f, 'lost', 't1', clock())
    },
    present: 'lost',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', lost: 'superseded', t1: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    rule: 'a revoked token (logout) is invalid',
    arrange: (f, t) => revokeFamily(t, f.sessionId, 'logout'),
    present: 't0',
    outcome: 'invalid_refresh_token',
    tokens: { t0: 'revoked' },
    session: 'logout',
  },
  {
    rule: 'an expired token is invalid, and stays active (nothing is spent)',
    arrange: async (_f, _t, clock) => clock.advance(REFRESH_TTL_MS),
    present: 't0',
    outcome: 'invalid_refresh_token',
    unchanged: true,
  },
  {
    rule: 'an unknown token is invalid',
    present: 'unknown',
    outcome: 'invalid_refresh_token',
    tokens: { t0: 'active' },
    session: 'live',
  },
  {
    rule: 'inside the reuse interval, the parent of an unused child answers that child again',
    interval: INTERVAL,
    arrange: (f, t) => rotate(t, f, 't0', 't1'),
    present: 't0',
    outcome: 'replayed',
    replays: 't1',
    unchanged: true,
  },
  {
    rule: 'one millisecond before the end of the interval it still replays',
    interval: INTERVAL,
    arrange: async (f, t, clock) => {
      await rotate(t, f, 't0', 't1')
      clock.advance(INTERVAL * 1000 - 1)
    },
    present: 't0',
    outcome: 'replayed',
    replays: 't1',
    unchanged: true,
  },
  {
    rule: 'in strict mode (interval 0) the parent again is reuse, whatever was kept before',
    interval: 0,
    arrange: (f, t) => rotate(t, f, 't0', 't1'),
    present: 't0',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    rule: 'an interval lowered since the rotation counts as lowered',
    interval: 1,
    arrange: async (f, t, clock) => {
      await rotate(t, f, 't0', 't1')
      clock.advance(1_000)
    },
    present: 't0',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    rule: 'at exactly the reuse interval it is reuse',
    interval: INTERVAL,
    arrange: async (f, t, clock) => {
      await rotate(t, f, 't0', 't1')
      clock.advance(INTERVAL * 1000)
    },
    present: 't0',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    rule: 'after the reuse interval it is reuse',
    interval: INTERVAL,
    arrange: async (f, t, clock) => {
      await rotate(t, f, 't0', 't1')
      clock.advance(INTERVAL * 1000 + 1)
    },
    present: 't0',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    rule: 'inside the interval, a parent whose child was used is reuse',
    interval: INTERVAL,
    arrange: async (f, t) => {
      await rotate(t, f, 't0', 't1')
      await rotate(t, f, 't1', 't2')
    },
    present: 't0',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'rotated', t2: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    rule: 'inside the interval, the parent of a used child again answers its own child',
    interval: INTERVAL,
    arrange: async (f, t) => {
      await rotate(t, f, 't0', 't1')
      await rotate(t, f, 't1', 't2')
    },
    present: 't1',
    outcome: 'replayed',
    replays: 't2',
    unchanged: true,
  },
  {
    rule: 'inside the interval, a grandparent is reuse',
    interval: INTERVAL,
    arrange: async (f, t) => {
      await rotate(t, f, 't0', 't1')
      await rotate(t, f, 't1', 't2')
      await rotate(t, f, 't2', 't3')
    },
    present: 't1',
    outcome: 'refresh_token_reused',
    tokens: { t0: 'rotated', t1: 'rotated', t2: 'rotated', t3: 'revoked' },
    session: 'refresh_token_reused',
  },
  {
    // Disabling revokes the sessions too; this is the moment in between (a disable committing
    // while the refresh runs), so the user row is written directly.
    rule: 'a disabled user is invalid, with nothing committed',
    arrange: async (f, t) => {
      await t.db.updateTable('users').set({ disabled: 1 }).where('id', '=', f.userId).execute()
    },
    present: 't0',
    outcome: 'invalid_refresh_token',
    unchanged: true,
  },
  {
    // A session ended by another path than revokeFamily (its tokens left active).
    rule: 'a revoked session is invalid, with nothing committed',
    arrange: async (f, t, clock) => {
      await t.db
        .updateTable('sessions')
        .set({ revoked_at: clock(), revoked_reason: 'session_deleted' })
        .where('id', '=', f.sessionId)
        .execute()
    },
    present: 't0',
    outcome: 'invalid_refresh_token',
    unchanged: true,
  },
  {
    rule: 'past the per-session limit: rate_limited, with nothing committed',
    limit: 2,
    arrange: async (f, t) => {
      await rotate(t, f, 't0', 't1', { limit: 2 })
      await rotate(t, f, 't1', 't2', { limit: 2 })
    },
    present: 't2',
    outcome: 'rate_limited',
    unchanged: true,
  },
]

/** The deps rotateRefreshToken gets: the instance's, with the row's interval and limit. */
function depsFor(t: Tessera, options: { interval?: number; limit?: number }) {
  return {
    ...t,
    config: {
      ...t.config,
      refreshReuseInterval: options.interval ?? 0,
      rateLimits: { ...t.config.rateLimits, refreshPerSession: options.limit ?? 0 },
    },
  }
}

/** A rotation that must succeed, its new token kept as `as`. */
async function rotate(
  t: Tessera,
  f: Family,
  from: string,
  as: string,
  options: { interval?: number; limit?: number } = { interval: INTERVAL },
): Promise<void> {
  const rotation = await rotateRefreshToken(depsFor(t, options), f.tokens.get(from)!, CLIENT)
  expect(rotation.replayed).toBe(false)
  f.tokens.set(as, rotation.pair.refresh_token)
}

/**
 * What the reuse interval of Tessera before migration 0009 left when `from`'s parent was
 * presented again: `from` superseded, and a fresh active sibling `as`.
 */
async function supersede(t: Tessera, f: Family, from: string, as: string, now: number) {
  const lost = await t.db
    .updateTable('refresh_tokens')
    .set({ status: 'superseded' })
    .where('token_hash', '=', hashRefreshToken(f.tokens.get(from)!))
    .returningAll()
    .executeTakeFirstOrThrow()
  const { token, hash } = generateRefreshToken()
  await t.db
    .insertInto('refresh_tokens')
    .values({
      ...lost,
      id: crypto.randomUUID(),
      token_hash: hash,
      status: 'active',
      created_at: now,
    })
    .execute()
  f.tokens.set(as, token)
}

async function expectOutcome(
  attempt: Promise<unknown>,
  code: Exclude<Outcome, 'rotated' | 'replayed'>,
) {
  await expect(attempt).rejects.toSatisfy(
    (error) => error instanceof TesseraError && error.code === code,
  )
}

for (const dialect of dialects()) {
  describe(`rotateRefreshToken, rule by rule [${dialect}]`, () => {
    let database: TestDatabase
    let t: Tessera
    const clock = testClock()

    beforeAll(async () => {
      database = await createTestDatabase(dialect)
      const config = loadConfig({
        DATABASE_URL: database.url,
        LOG_LEVEL: 'silent',
        ...testKeyEnv(database.url),
      })
      t = await createTessera(config, { clock, passwordHashing: FAST_HASHING })
    })
    afterAll(async () => {
      await t?.close()
      await database?.drop()
    })

    async function newFamily(): Promise<Family> {
      const user = await registerAccount(
        t,
        { email: uniqueEmail('rule'), password: PASSWORD, displayName: null },
        CLIENT,
      )
      const session = await startSession(t, user.id, CLIENT)
      return {
        userId: user.id,
        sessionId: session.sessionId,
        tokens: new Map([['t0', session.refreshToken]]),
      }
    }

    /** The family's rows: its session and every token, by the name the row gave it. */
    async function rowsOf(f: Family) {
      const names = new Map([...f.tokens].map(([name, token]) => [hashRefreshToken(token), name]))
      const tokens = await t.db
        .selectFrom('refresh_tokens')
        .select([
          'id',
          'token_hash',
          'status',
          'used_at',
          'expires_at',
          'parent_id',
          'replay_sealed',
          'replay_until',
        ])
        .where('family_id', '=', f.sessionId)
        .execute()
      const session = await t.db
        .selectFrom('sessions')
        .select(['revoked_reason', 'last_used_at', 'refresh_window_start', 'refresh_count'])
        .where('id', '=', f.sessionId)
        .executeTakeFirstOrThrow()
      const reuseEvents = await t.db
        .selectFrom('audit_events')
        .select('id')
        .where('event', '=', 'refresh_reuse_detected')
        .where('session_id', '=', f.sessionId)
        .execute()
      return {
        tokens: Object.fromEntries(
          tokens.map(({ token_hash, ...row }) => [names.get(token_hash) ?? 'next', row]),
        ),
        session,
        reuseEvents: reuseEvents.length,
      }
    }

    for (const row of rules) {
      it(row.rule, async () => {
        const f = await newFamily()
        await row.arrange?.(f, t, clock)
        const before = await rowsOf(f)
        const presented =
          row.present === 'unknown' ? `tessera_rt_${'A'.repeat(43)}` : f.tokens.get(row.present)!
        const attempt = rotateRefreshToken(depsFor(t, row), presented, CLIENT)

        if (row.outcome === 'rotated' || row.outcome === 'replayed') {
          const rotation = await attempt
          expect(rotation.sessionId).toBe(f.sessionId)
          expect(rotation.userId).toBe(f.userId)
          expect(rotation.replayed).toBe(row.outcome === 'replayed')
          if (row.replays !== undefined) {
            expect(rotation.pair.refresh_token).toBe(f.tokens.get(row.replays))
          } else {
            f.tokens.set('next', rotation.pair.refresh_token)
          }
        } else {
          await expectOutcome(attempt, row.outcome)
        }

        const after = await rowsOf(f)
        if (row.unchanged) {
          expect(after).toEqual(before)
          return
        }
        const statuses = Object.fromEntries(
          Object.entries(after.tokens).map(([name, token]) => [name, token.status]),
        )
        expect(statuses).toEqual(row.tokens)
        expect(after.session.revoked_reason ?? 'live').toBe(row.session)
        // The reuse that revokes the family is recorded once, by the presentation that found it.
        const detected =
          row.outcome === 'refresh_token_reused' && before.session.revoked_reason === null
        expect(after.reuseEvents).toBe(before.reuseEvents + (detected ? 1 : 0))
        // The tokens that keep an answer for the reuse interval: only the one just rotated,
        // with an interval; none of a revoked family.
        const keeping = Object.entries(after.tokens)
          .filter(([, token]) => token.replay_sealed !== null || token.replay_until !== null)
          .map(([name]) => name)
        if (row.outcome === 'rotated') {
          const spent = after.tokens[row.present]!
          expect(spent.used_at).toBe(clock())
          expect(after.tokens.next!.parent_id).toBe(spent.id)
          expect(after.session.last_used_at).toBe(clock())
          const interval = row.interval ?? 0
          expect(keeping).toEqual(interval > 0 ? [row.present] : [])
          if (interval > 0) expect(spent.replay_until).toBe(clock() + interval * 1000)
        } else if (row.session !== 'live') {
          expect(keeping).toEqual([])
        }
      })
    }
  })
}
