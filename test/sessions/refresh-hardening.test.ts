/**
 * The refresh rule under attack: theft inside the reuse interval, logout racing a refresh, a
 * claimed token that cannot be used, and the per-session refresh limit (README, "Tokens").
 * Outside the theft cases the interval is 0 (strict), as the rules there do not depend on it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashRefreshToken } from '../../src/sessions/refresh-token.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  refresh,
  refreshPair,
  registerAndLogin,
  type TokenPairBody,
} from '../support/users.js'

async function codeOf(res: Response): Promise<string | undefined> {
  return res.status === 200 ? undefined : ((await res.json()) as { code?: string }).code
}

async function reuseEvents(app: TestApp, userId: string): Promise<number> {
  const rows = await app.server.tessera.db
    .selectFrom('audit_events')
    .select('id')
    .where('user_id', '=', userId)
    .where('event', '=', 'refresh_reuse_detected')
    .execute()
  return rows.length
}

async function sessionOf(app: TestApp, userId: string) {
  return app.server.tessera.db
    .selectFrom('sessions')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at', 'desc')
    .executeTakeFirstOrThrow()
}

/** Active refresh tokens whose session is revoked: must never exist. */
async function activeTokensOfRevokedSessions(app: TestApp, userId: string): Promise<number> {
  const rows = await app.server.tessera.db
    .selectFrom('refresh_tokens as t')
    .innerJoin('sessions as s', 's.id', 't.family_id')
    .select('t.id')
    .where('t.user_id', '=', userId)
    .where('t.status', '=', 'active')
    .where('s.revoked_at', 'is not', null)
    .execute()
  return rows.length
}

for (const dialect of dialects()) {
  describe(`theft inside the reuse interval [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { REFRESH_REUSE_INTERVAL: '10' } })
    })
    afterAll(() => app.close())

    it('thief replays the rotated parent first', async () => {
      // Inside the interval the thief gets the victim's own pair, nothing new. The victim moving
      // on uses that child, so the thief's next presentation of the parent is reuse.
      const { tokens: parent, user } = await registerAndLogin(app)
      const victimRes = await refresh(app, parent.refresh_token)
      const victimBytes = await victimRes.text()
      const victim = JSON.parse(victimBytes) as TokenPairBody
      app.clock.advance(1_000)
      const thiefRes = await refresh(app, parent.refresh_token)
      expect(await thiefRes.text()).toBe(victimBytes)
      const next = await refreshPair(app, victim.refresh_token)
      await expectProblem(await refresh(app, parent.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, next.refresh_token), 401, 'invalid_refresh_token')
      expect((await sessionOf(app, user.id)).revoked_reason).toBe('refresh_token_reused')
      expect(await reuseEvents(app, user.id)).toBe(1)
      await expectProblem(
        await app.request('/v1/user/me', { token: victim.access_token }),
        401,
        'unauthorized',
      )
    })

    it('victim uses its child first: the thief replaying the parent is reuse', async () => {
      const { tokens: parent, user } = await registerAndLogin(app)
      const child = await refreshPair(app, parent.refresh_token)
      const grandchild = await refreshPair(app, child.refresh_token)
      app.clock.advance(1_000)
      await expectProblem(await refresh(app, parent.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(
        await refresh(app, grandchild.refresh_token),
        401,
        'invalid_refresh_token',
      )
      expect((await sessionOf(app, user.id)).revoked_reason).toBe('refresh_token_reused')
      expect(await reuseEvents(app, user.id)).toBe(1)
    })

    it('thief and victim at once, 50 times: one new child at most, always detected', async () => {
      const { email, user } = await registerAndLogin(app)
      for (let trial = 0; trial < 50; trial++) {
        const parent = await login(app, email)
        const victimRes = await refresh(app, parent.refresh_token)
        const victimBytes = await victimRes.text()
        const victim = JSON.parse(victimBytes) as TokenPairBody
        const [thiefRes, nextRes] = await Promise.all([
          refresh(app, parent.refresh_token),
          refresh(app, victim.refresh_token),
        ])
        // The victim's refresh always rotates; the thief either came first and got the victim's
        // own pair again, or came after and was reuse.
        expect(nextRes.status, `trial ${trial}`).toBe(200)
        const thiefCode = await codeOf(thiefRes.clone())
        if (thiefCode === undefined) expect(await thiefRes.text()).toBe(victimBytes)
        else expect(thiefCode, `trial ${trial}`).toBe('refresh_token_reused')
        // Either way the parent is reuse now (its child is used), and the family ends.
        await expectProblem(await refresh(app, parent.refresh_token), 401, 'refresh_token_reused')
        const next = (await nextRes.json()) as TokenPairBody
        await expectProblem(await refresh(app, next.refresh_token), 401, 'invalid_refresh_token')
        const db = app.server.tessera.db
        const family = await db
          .selectFrom('refresh_tokens')
          .select('token_hash')
          .where('family_id', '=', (eb) =>
            eb
              .selectFrom('refresh_tokens')
              .select('family_id')
              .where('token_hash', '=', hashRefreshToken(parent.refresh_token)),
          )
          .execute()
        // parent, victim's child, its one successor: nothing else was ever issued.
        expect(family, `trial ${trial}`).toHaveLength(3)
        // Only the session of registerAndLogin is live; every trial's ended as reuse.
        const sessions = await app.server.tessera.db
          .selectFrom('sessions')
          .select(['revoked_reason'])
          .where('user_id', '=', user.id)
          .execute()
        expect(sessions.filter((s) => s.revoked_reason === null)).toHaveLength(1)
        expect(sessions.filter((s) => s.revoked_reason === 'refresh_token_reused')).toHaveLength(
          trial + 1,
        )
      }
      expect(await activeTokensOfRevokedSessions(app, user.id)).toBe(0)
    }, 120_000)
  })

  describe(`logout racing refresh [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_LOGIN_PER_IP: '0', REFRESH_REUSE_INTERVAL: '0' },
      })
    })
    afterAll(() => app.close())

    it('100 races: no active token in a revoked session, no false reuse', async () => {
      // Not from the child either.
      const { email, user } = await registerAndLogin(app)
      for (let trial = 0; trial < 100; trial++) {
        const { refresh_token: token } = await login(app, email)
        const [refreshed, loggedOut] = await Promise.all([
          refresh(app, token),
          app.request('/v1/user/auth/logout', { json: { refresh_token: token } }),
        ])
        expect(loggedOut.status).toBe(204)
        expect(await activeTokensOfRevokedSessions(app, user.id), `trial ${trial}`).toBe(0)
        if (refreshed.status === 200) {
          const child = (await refreshed.json()) as TokenPairBody
          // Twice: a first presentation must not leave anything that makes the second look like
          // reuse.
          await expectProblem(await refresh(app, child.refresh_token), 401, 'invalid_refresh_token')
          await expectProblem(await refresh(app, child.refresh_token), 401, 'invalid_refresh_token')
        } else {
          expect(await codeOf(refreshed)).toBe('invalid_refresh_token')
        }
      }
      expect(await reuseEvents(app, user.id)).toBe(0)
    }, 120_000)
  })

  describe(`a claimed token that cannot be used commits nothing [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { REFRESH_REUSE_INTERVAL: '0' } })
    })
    afterAll(() => app.close())

    it('an active token of a revoked session is invalid_refresh_token every time', async () => {
      // The state the logout/refresh race used to leave behind (and databases may still hold).
      const { tokens, user } = await registerAndLogin(app)
      await app.server.tessera.db
        .updateTable('sessions')
        .set({ revoked_at: app.clock(), revoked_reason: 'logout' })
        .where('user_id', '=', user.id)
        .execute()
      for (let i = 0; i < 3; i++) {
        await expectProblem(await refresh(app, tokens.refresh_token), 401, 'invalid_refresh_token')
      }
      expect(await reuseEvents(app, user.id)).toBe(0)
    })

    it('a live session of a disabled user answers invalid_refresh_token every time', async () => {
      const { tokens, user } = await registerAndLogin(app)
      const db = app.server.tessera.db
      await db.updateTable('users').set({ disabled: 1 }).where('id', '=', user.id).execute()
      for (let i = 0; i < 3; i++) {
        await expectProblem(await refresh(app, tokens.refresh_token), 401, 'invalid_refresh_token')
      }
      expect(await reuseEvents(app, user.id)).toBe(0)
      // Nothing was spent: the token is still the family's one active token.
      const rows = await db
        .selectFrom('refresh_tokens')
        .select('status')
        .where('user_id', '=', user.id)
        .execute()
      expect(rows.map((r) => r.status)).toEqual(['active'])
    })
  })

  describe(`per-session refresh limit [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_REFRESH_PER_SESSION: '3',
          RATE_LIMIT_WINDOW: '60',
          REFRESH_REUSE_INTERVAL: '0',
        },
      })
    })
    afterAll(() => app.close())

    it('past the limit', async () => {
      // 429 with Retry-After, the token unspent; it works after the window.
      const { tokens, email } = await registerAndLogin(app)
      let current = tokens.refresh_token
      for (let i = 0; i < 3; i++) current = (await refreshPair(app, current)).refresh_token
      app.clock.advance(20_000)
      const limited = await refresh(app, current)
      expect(limited.headers.get('retry-after')).toBe('40')
      await expectProblem(limited, 429, 'rate_limited')
      await expectProblem(await refresh(app, current), 429, 'rate_limited')

      // Another session of the same user has its own allowance.
      const other = await login(app, email)
      await refreshPair(app, other.refresh_token)

      app.clock.advance(40_000)
      // Not spent by the refused attempts, and not reuse.
      const next = await refreshPair(app, current)
      await refreshPair(app, next.refresh_token)
    })

    it('a rotated token presented past the limit is still detected as reuse', async () => {
      const { tokens, user } = await registerAndLogin(app)
      let current = tokens.refresh_token
      for (let i = 0; i < 3; i++) current = (await refreshPair(app, current)).refresh_token
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, current), 401, 'invalid_refresh_token')
      expect(await reuseEvents(app, user.id)).toBe(1)
    })
  })

  describe(`replays and the per-session limit [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_REFRESH_PER_SESSION: '3', REFRESH_REUSE_INTERVAL: '10' },
      })
    })
    afterAll(() => app.close())

    it('a replay issues nothing, so it counts nothing against the limit', async () => {
      const { tokens } = await registerAndLogin(app)
      const t1 = await refreshPair(app, tokens.refresh_token)
      const t2Bytes = await (await refresh(app, t1.refresh_token)).text()
      for (let i = 0; i < 5; i++)
        expect(await (await refresh(app, t1.refresh_token)).text()).toBe(t2Bytes)
      // The third rotation is the third of the window: allowed.
      const t2 = JSON.parse(t2Bytes) as TokenPairBody
      const t3 = await refreshPair(app, t2.refresh_token)
      await expectProblem(await refresh(app, t3.refresh_token), 429, 'rate_limited')
    })
  })
}
