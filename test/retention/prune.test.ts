/**
 * The retention job (README, "Storage and retention"; src/retention): expired rows of each table
 * go and live ones stay; a live family keeps its newest KEPT_PER_FAMILY tokens, so reuse of a
 * recently rotated token still revokes it; and with two instances on one database under refresh
 * load one prunes at a time and no live family loses what it needs.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { claimPruneLease } from '../../src/retention/lease.js'
import {
  EXPIRED_GRACE_MS,
  KEPT_PER_FAMILY,
  type PruneDeps,
  prune,
} from '../../src/retention/prune.js'
import { recordRevocation, revocationRetentionMs } from '../../src/revocations/log.js'
import { revokeFamily } from '../../src/sessions/sessions.js'
import { createTessera, type Tessera } from '../../src/tessera.js'
import { FAST_HASHING, makeTestApp, type TestApp, testKeyEnv } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  refresh,
  refreshPair,
  register,
  type TokenPairBody,
  uniqueEmail,
} from '../support/users.js'

/** Past the reuse interval (10 s): presenting a spent token again is reuse, not a replay. */
const STEP_MS = 11_000

function sessionOf(pair: TokenPairBody): string {
  const bytes = Buffer.from(pair.access_token.split('.')[2]!, 'base64url')
  return (JSON.parse(bytes.subarray(0, bytes.length - 64).toString('utf8')) as { sid: string }).sid
}

for (const dialect of dialects()) {
  describe(`the retention job [${dialect}]`, { timeout: 120_000 }, () => {
    let app: TestApp
    let deps: PruneDeps
    // No limit on refreshes per session: the tests refresh one session many times.
    const env = { RATE_LIMIT_REFRESH_PER_SESSION: '0', PRUNE_INTERVAL: '0' }

    beforeAll(async () => {
      app = await makeTestApp({ dialect, env })
      deps = app.server.tessera
    })
    afterAll(() => app.close())

    /** A login and `n` refreshes, STEP_MS apart: every token of the family, oldest first. */
    async function family(email: string, n: number): Promise<TokenPairBody[]> {
      const pairs = [await login(app, email)]
      for (let i = 0; i < n; i++) {
        app.clock.advance(STEP_MS)
        pairs.push(await refreshPair(app, pairs.at(-1)!.refresh_token))
      }
      return pairs
    }

    const rowsOf = async (sessionId: string) =>
      (
        await deps.db
          .selectFrom('refresh_tokens')
          .select('id')
          .where('family_id', '=', sessionId)
          .execute()
      ).length

    it('deletes the expired rows of each table and keeps the live ones', async () => {
      const { email, user } = await register(app, uniqueEmail('prune'))
      // An ended session: logged out, then past the revocation feed's retention.
      const ended = await family(email, 3)
      const endedId = sessionOf(ended[0]!)
      await revokeFamily(deps, endedId, 'logout')
      app.clock.advance(revocationRetentionMs(deps.config) + 60_000)
      const live = await family(email, 2)
      const liveId = sessionOf(live[0]!)

      const now = app.clock()
      const past = now - EXPIRED_GRACE_MS - 1
      const future = now + 600_000
      const both = (expiresAt: number) => [
        { key: `old-${randomUUID()}`, expiresAt: past },
        { key: `new-${randomUUID()}`, expiresAt: expiresAt },
      ]
      for (const row of both(future)) {
        await deps.db
          .insertInto('oauth_states')
          .values({
            state_hash: row.key,
            provider: 'github',
            code_verifier: 'v',
            nonce: null,
            redirect_uri: 'http://127.0.0.1/cb',
            link_user_id: null,
            browser_hash: 'b',
            client_code_challenge: null,
            client_state: null,
            link_session_id: null,
            created_at: now,
            expires_at: row.expiresAt,
            used_at: null,
          })
          .execute()
        const owned = { user_id: user.id, created_at: now, expires_at: row.expiresAt }
        await deps.db
          .insertInto('login_codes')
          .values({
            code_hash: row.key,
            provider: 'github',
            code_challenge: null,
            used_at: null,
            ...owned,
          })
          .execute()
        await deps.db
          .insertInto('link_tickets')
          .values({
            ticket_hash: row.key,
            session_id: liveId,
            provider: 'github',
            redirect_uri: 'http://127.0.0.1/cb',
            used_at: null,
            ...owned,
          })
          .execute()
        await deps.db
          .insertInto('device_authorizations')
          .values({
            device_code_hash: row.key,
            user_code_hash: row.key,
            client_id: 'tessera-cli',
            client_ip: null,
            client_user_agent: null,
            status: 'pending',
            interval_seconds: 5,
            last_polled_at: null,
            user_id: null,
            decided_by_session_id: null,
            decided_at: null,
            created_at: now,
            expires_at: row.expiresAt,
          })
          .execute()
        await deps.db
          .insertInto('password_resets')
          .values({ token_hash: row.key, credential_version: 0, used_at: null, ...owned })
          .execute()
        await deps.db
          .insertInto('email_tokens')
          .values({
            token_hash: row.key,
            purpose: 'verify',
            email,
            change_id: null,
            used_at: null,
            ...owned,
          })
          .execute()
        await deps.db
          .insertInto('login_devices')
          .values({ token_hash: row.key, ...owned })
          .execute()
      }
      // The rate limiter counts by the system clock.
      await deps.db
        .insertInto('rate_limits')
        .values([
          { key: 'prune-test-old', points: 1, expire: Date.now() - 1000 },
          { key: 'prune-test-new', points: 1, expire: Date.now() + 600_000 },
        ])
        .execute()
      const auditAge = deps.config.auditRetentionDays * 86_400_000
      const oldEvent = randomUUID()
      const newEvent = randomUUID()
      await deps.db
        .insertInto('audit_events')
        .values([
          {
            id: oldEvent,
            at: now - auditAge - 1,
            event: 'logout',
            user_id: null,
            session_id: null,
            ip: null,
            detail: null,
          },
          {
            id: newEvent,
            at: now - auditAge + 60_000,
            event: 'logout',
            user_id: null,
            session_id: null,
            ip: null,
            detail: null,
          },
        ])
        .execute()
      const oldRevocation = randomUUID()
      await recordRevocation(deps.db, () => now - revocationRetentionMs(deps.config) - 1, {
        kind: 'session',
        sessionId: oldRevocation,
      })

      const pass = await prune(deps)
      expect(pass.outcome).toBe('pruned')
      if (pass.outcome !== 'pruned') return
      for (const table of [
        'oauth_states',
        'login_codes',
        'link_tickets',
        'device_authorizations',
        'password_resets',
        'email_tokens',
        'login_devices',
      ] as const) {
        expect(pass.deleted[table], table).toBeGreaterThanOrEqual(1)
        const keyOf = {
          oauth_states: 'state_hash',
          login_codes: 'code_hash',
          link_tickets: 'ticket_hash',
          device_authorizations: 'device_code_hash',
          password_resets: 'token_hash',
          email_tokens: 'token_hash',
          login_devices: 'token_hash',
        } as const
        const rows = await deps.db
          .selectFrom(table)
          .select(`${keyOf[table]} as key` as never)
          .execute()
        const keys = (rows as unknown as Array<{ key: string }>).map((r) => r.key)
        expect(
          keys.some((k) => k.startsWith('old-')),
          table,
        ).toBe(false)
        expect(
          keys.some((k) => k.startsWith('new-')),
          table,
        ).toBe(true)
      }
      const limits = await deps.db.selectFrom('rate_limits').select('key').execute()
      expect(limits.map((r) => r.key)).toContain('prune-test-new')
      expect(limits.map((r) => r.key)).not.toContain('prune-test-old')
      const events = await deps.db.selectFrom('audit_events').select('id').execute()
      expect(events.map((e) => e.id)).toContain(newEvent)
      expect(events.map((e) => e.id)).not.toContain(oldEvent)
      const revocations = await deps.db
        .selectFrom('revocation_log')
        .select('subject')
        .where('subject', '=', oldRevocation)
        .execute()
      expect(revocations).toEqual([])

      // The ended session and its tokens are gone; the live one and its tokens stay.
      const sessions = await deps.db.selectFrom('sessions').select('id').execute()
      expect(sessions.map((s) => s.id)).not.toContain(endedId)
      expect(sessions.map((s) => s.id)).toContain(liveId)
      expect(await rowsOf(endedId)).toBe(0)
      expect(await rowsOf(liveId)).toBe(3)
      expect((await refresh(app, live.at(-1)!.refresh_token)).status).toBe(200)
    })

    it('a live family keeps its newest tokens: reuse of a kept one still revokes it', async () => {
      const { email } = await register(app, uniqueEmail('family'))
      const pairs = await family(email, 30)
      const sessionId = sessionOf(pairs[0]!)
      expect(await rowsOf(sessionId)).toBe(31)
      await prune(deps)
      expect(await rowsOf(sessionId)).toBe(KEPT_PER_FAMILY)

      // The oldest tokens are gone: presenting one grants nothing and ends nothing.
      await expectProblem(await refresh(app, pairs[0]!.refresh_token), 401, 'invalid_refresh_token')
      const next = await refreshPair(app, pairs.at(-1)!.refresh_token)
      // A rotated token the family kept: reuse, the family is revoked.
      const kept = pairs.at(-5)!.refresh_token
      await expectProblem(await refresh(app, kept), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, next.refresh_token), 401, 'invalid_refresh_token')
      const session = await deps.db
        .selectFrom('sessions')
        .select('revoked_reason')
        .where('id', '=', sessionId)
        .executeTakeFirstOrThrow()
      expect(session.revoked_reason).toBe('refresh_token_reused')
    })

    it('counts what it deleted in tessera_pruned_rows_total', async () => {
      const { email } = await register(app, uniqueEmail('metrics'))
      await family(email, KEPT_PER_FAMILY + 3)
      const t = app.server.tessera
      const pass = await prune({ ...t, prunedRows: t.metrics.prunedRows })
      expect(pass.outcome === 'pruned' && pass.deleted.refresh_tokens).toBeGreaterThanOrEqual(3)
      const text = await (await app.request('/metrics')).text()
      const line = /^tessera_pruned_rows_total\{table="refresh_tokens"\} (\d+)$/m.exec(text)
      expect(Number(line?.[1])).toBeGreaterThanOrEqual(3)
    })

    describe('two instances on one database, under refresh load', () => {
      let other: Tessera

      beforeAll(async () => {
        const config = loadConfig({
          DATABASE_URL: app.databaseUrl,
          LOG_LEVEL: 'silent',
          ...testKeyEnv(app.databaseUrl),
          ...env,
        })
        other = await createTessera(config, { clock: app.clock, passwordHashing: FAST_HASHING })
      })
      afterAll(() => other.close())

      it('one prunes at a time: a held lease makes the other skip', async () => {
        const lease = await claimPruneLease(other, 0)
        expect(lease).toBeDefined()
        expect((await prune(deps)).outcome).toBe('skipped')
        await lease!.release()
        expect((await prune(deps)).outcome).toBe('pruned')
        // A server's pass waits out PRUNE_INTERVAL after the last one, whoever ran it.
        expect((await prune(other, { minGapMs: 3_600_000 })).outcome).toBe('skipped')
      })

      it('no live family loses a row it needs; reuse detection still works', async () => {
        const emails = await Promise.all(
          Array.from({ length: 6 }, async () => (await register(app, uniqueEmail('load'))).email),
        )
        const chains = await Promise.all(emails.map((email) => family(email, 20)))
        let refreshing = true
        const failures: string[] = []
        const load = Promise.all(
          chains.map(async (chain) => {
            while (refreshing) {
              app.clock.advance(1)
              const res = await refresh(app, chain.at(-1)!.refresh_token)
              if (res.status !== 200) failures.push(`${res.status} ${await res.text()}`)
              else chain.push((await res.json()) as TokenPairBody)
            }
          }),
        )
        const passes = []
        for (let round = 0; round < 4; round++) {
          const both = await Promise.all([prune(deps), prune(other)])
          expect(both.some((p) => p.outcome === 'pruned')).toBe(true)
          passes.push(...both)
        }
        refreshing = false
        await load
        expect(failures).toEqual([])
        const deleted = passes.reduce(
          (sum, p) => sum + (p.outcome === 'pruned' ? p.deleted.refresh_tokens : 0),
          0,
        )
        expect(deleted).toBeGreaterThanOrEqual(6 * (21 - KEPT_PER_FAMILY))
        for (const chain of chains) {
          expect(await rowsOf(sessionOf(chain[0]!))).toBeGreaterThanOrEqual(KEPT_PER_FAMILY)
          // Every live family refreshes on, from either instance's database view.
          chain.push(await refreshPair(app, chain.at(-1)!.refresh_token))
        }
        // A rotated token of a live family, presented after the passes: reuse.
        app.clock.advance(STEP_MS)
        const victim = chains[0]!
        await expectProblem(
          await refresh(app, victim.at(-3)!.refresh_token),
          401,
          'refresh_token_reused',
        )
      })
    })
  })
}

describe('the server prunes every PRUNE_INTERVAL seconds [sqlite]', { timeout: 60_000 }, () => {
  it('deletes an expired row without anyone running tessera prune', async () => {
    const app = await makeTestApp({ env: { PRUNE_INTERVAL: '1' } })
    try {
      const now = app.clock()
      await app.server.tessera.db
        .insertInto('login_codes')
        .values({
          code_hash: 'expired-code',
          user_id: (await register(app)).user.id,
          provider: 'github',
          code_challenge: null,
          created_at: now,
          expires_at: now - EXPIRED_GRACE_MS - 1,
          used_at: null,
        })
        .execute()
      // The server's own timer (real seconds): wait for its pass, never longer than the timeout.
      for (;;) {
        const left = await app.server.tessera.db
          .selectFrom('login_codes')
          .select('code_hash')
          .where('code_hash', '=', 'expired-code')
          .execute()
        if (left.length === 0) break
        await new Promise((r) => setTimeout(r, 200))
      }
    } finally {
      await app.close()
    }
  })
})
