/**
 * Audit log access (README, "Audit log"): `GET /v1/admin/audit` for superusers only, its filters,
 * keyset pages that neither repeat nor skip while events are written, and the server host's
 * `tessera audit export` as JSON lines.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recordAudit } from '../../src/audit/audit.js'
import { makeTestApp, type TestApp, testKeyEnv } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import { dialects } from '../support/dialects.js'
import { type SignedInSuperuser, signedInSuperuser } from '../support/superuser.js'
import { expectProblem, login, register, registerAndLogin } from '../support/users.js'

interface Page {
  events: Array<{ id: string; at: string; event: string; user_id: string | null }>
  next_cursor: string | null
}

for (const dialect of dialects()) {
  describe(`GET /v1/admin/audit [${dialect}]`, { timeout: 60_000 }, () => {
    let app: TestApp
    let root: SignedInSuperuser

    beforeAll(async () => {
      app = await makeTestApp({ dialect })
      root = await signedInSuperuser(app)
    })
    afterAll(() => app.close())

    const list = async (query: string, token = root.tokens.access_token) => {
      const res = await app.request(`/v1/admin/audit${query}`, { token })
      expect(res.status, await res.clone().text()).toBe(200)
      expect(res.headers.get('cache-control')).toBe('no-store')
      return (await res.json()) as Page
    }

    it('401 without a token, 403 for a regular user', async () => {
      await expectProblem(await app.request('/v1/admin/audit'), 401, 'unauthorized')
      const regular = await registerAndLogin(app)
      await expectProblem(
        await app.request('/v1/admin/audit', { token: regular.tokens.access_token }),
        403,
        'forbidden',
      )
    })

    it('filters by user, event and time range', async () => {
      const other = await registerAndLogin(app)
      const start = app.clock()
      app.clock.advance(1000)
      await recordAudit(app.server.tessera.db, app.clock, {
        event: 'logout',
        userId: other.user.id,
        detail: { reason: 'test' },
      })
      const mine = await list(`?user_id=${other.user.id}`)
      expect(mine.events.map((e) => e.event).sort()).toEqual([
        'email_verification_sent',
        'login_succeeded',
        'logout',
        'user_registered',
      ])
      const logouts = await list(`?user_id=${other.user.id}&event=logout`)
      expect(logouts.events).toHaveLength(1)
      expect(logouts.events[0]).toMatchObject({ detail: { reason: 'test' } })
      const since = new Date(start + 500).toISOString()
      expect((await list(`?user_id=${other.user.id}&since=${since}`)).events).toHaveLength(1)
      expect((await list(`?user_id=${other.user.id}&until=${since}`)).events).toHaveLength(3)
    })

    it('refuses malformed parameters with validation_failed', async () => {
      for (const query of [
        '?limit=0',
        '?limit=501',
        '?limit=ten',
        '?user_id=not-a-uuid',
        '?since=yesterday',
        '?event=DROP%20TABLE',
        `?cursor=${'A'.repeat(101)}`,
      ]) {
        const res = await app.request(`/v1/admin/audit${query}`, {
          token: root.tokens.access_token,
        })
        await expectProblem(res, 400, 'validation_failed')
      }
    })

    it('a cursor it did not hand out is invalid_cursor, as in the users list', async () => {
      const res = await app.request('/v1/admin/audit?cursor=bm90LWEtY3Vyc29y', {
        token: root.tokens.access_token,
      })
      await expectProblem(res, 400, 'invalid_cursor')
    })

    it('pages neither repeat nor skip an event while events are written', async () => {
      const { user } = await registerAndLogin(app)
      const db = app.server.tessera.db
      for (let i = 0; i < 25; i++) {
        // Several events in one millisecond: the cursor orders by id within it.
        if (i % 3 === 0) app.clock.advance(1)
        await recordAudit(db, app.clock, { event: 'logout', userId: user.id })
      }
      const before = (await list(`?user_id=${user.id}&event=logout&limit=500`)).events.map(
        (e) => e.id,
      )
      expect(before).toHaveLength(25)
      const seen: string[] = []
      let cursor: string | null = null
      do {
        const page: Page = await list(
          `?user_id=${user.id}&event=logout&limit=4${cursor === null ? '' : `&cursor=${cursor}`}`,
        )
        seen.push(...page.events.map((e) => e.id))
        cursor = page.next_cursor
        // Written between two pages, in the same millisecond and later.
        await recordAudit(db, app.clock, { event: 'logout', userId: user.id })
        app.clock.advance(1)
        await recordAudit(db, app.clock, { event: 'logout', userId: user.id })
      } while (cursor !== null)
      expect(seen).toEqual(before)
    })

    it('tessera audit export prints JSON lines, oldest first', async () => {
      const { user, email } = await register(app)
      app.clock.advance(5)
      await login(app, email)
      const env = {
        DATABASE_URL: app.databaseUrl,
        LOG_LEVEL: 'silent',
        ...(testKeyEnv(app.databaseUrl) as Record<string, string>),
      }
      const since = new Date(app.clock() - 3_600_000).toISOString()
      const run = await runTesseraInProcess(
        ['audit', 'export', '--since', since, '--until', '2999-01-01', '--user', email],
        { env },
      )
      expect(run.code, run.stderr).toBe(0)
      const lines = run.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Page['events'][0])
      // Registration's two events share a millisecond; the login is later.
      expect(
        lines
          .map((e) => e.event)
          .slice(0, 2)
          .sort(),
      ).toEqual(['email_verification_sent', 'user_registered'])
      expect(lines.map((e) => e.event).slice(2)).toEqual(['login_succeeded'])
      expect(lines.every((e) => e.user_id === user.id)).toBe(true)
      expect(run.stderr).toContain('3 events')

      const byEvent = await runTesseraInProcess(
        [
          'audit',
          'export',
          '--since',
          '2000-01-01',
          '--until',
          '2999-01-01',
          '--event',
          'login_succeeded',
        ],
        { env },
      )
      const events = byEvent.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Page['events'][0])
      expect(events.length).toBeGreaterThanOrEqual(2)
      expect(events.every((e) => e.event === 'login_succeeded')).toBe(true)
      const ats = events.map((e) => e.at)
      expect([...ats].sort()).toEqual(ats)

      const missing = await runTesseraInProcess(['audit', 'export'], { env })
      expect(missing.code).toBe(2)
      expect(missing.stderr).toContain('--since is required')
      const bad = await runTesseraInProcess(['audit', 'export', '--since', 'soon'], { env })
      expect(bad.code).toBe(2)
    })
  })
}
