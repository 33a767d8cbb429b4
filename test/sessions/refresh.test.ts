import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  refresh,
  refreshPair,
  registerAndLogin,
  type TokenPairBody,
  tokenPairOf,
} from '../support/users.js'

async function statusesOf(responses: Response[]) {
  const bodies = await Promise.all(
    responses.map(async (r) => ({ status: r.status, body: (await r.json()) as { code?: string } })),
  )
  return bodies
}

for (const dialect of dialects()) {
  describe(`refresh rotation, strict mode [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    it('50 concurrent refreshes of one token', async () => {
      // Exactly one succeeds and the family is revoked.
      const { tokens, user } = await registerAndLogin(app)
      const results = await statusesOf(
        await Promise.all(Array.from({ length: 50 }, () => refresh(app, tokens.refresh_token))),
      )
      const winners = results.filter((r) => r.status === 200)
      expect(winners).toHaveLength(1)
      expect(results.filter((r) => r.status === 401)).toHaveLength(49)
      for (const loser of results.filter((r) => r.status === 401)) {
        expect(loser.body.code).toBe('refresh_token_reused')
      }
      // The losers were reuse: the winner's fresh token went down with the family.
      const winner = winners[0]!.body as unknown as TokenPairBody
      await expectProblem(await refresh(app, winner.refresh_token), 401, 'invalid_refresh_token')
      // Exactly one child was ever stored: the login's token and its one successor.
      const stored = await app.server.tessera.db
        .selectFrom('refresh_tokens')
        .select('token_hash')
        .where('user_id', '=', user.id)
        .execute()
      expect(new Set(stored.map((r) => r.token_hash)).size).toBe(2)
    })

    it('rotates on every use: each token works exactly once, in sequence', async () => {
      const { tokens } = await registerAndLogin(app)
      let current = tokens.refresh_token
      const seen = new Set([current])
      for (let i = 0; i < 5; i++) {
        current = (await refreshPair(app, current)).refresh_token
        expect(seen.has(current)).toBe(false)
        seen.add(current)
      }
    })

    it('reuse of an older (grandparent) token revokes the family', async () => {
      const { tokens } = await registerAndLogin(app)
      const second = await refreshPair(app, tokens.refresh_token)
      const third = await refreshPair(app, second.refresh_token)
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, third.refresh_token), 401, 'invalid_refresh_token')
    })

    it('reuse writes an audit event and ends the session in the database', async () => {
      const { tokens, user } = await registerAndLogin(app)
      await refresh(app, tokens.refresh_token)
      await refresh(app, tokens.refresh_token)
      const db = app.server.tessera.db
      const events = await db
        .selectFrom('audit_events')
        .selectAll()
        .where('user_id', '=', user.id)
        .execute()
      expect(events.map((e) => e.event)).toContain('refresh_reuse_detected')
      const sessions = await db
        .selectFrom('sessions')
        .selectAll()
        .where('user_id', '=', user.id)
        .execute()
      expect(sessions).toHaveLength(1)
      expect(sessions[0]!.revoked_reason).toBe('refresh_token_reused')
      const active = await db
        .selectFrom('refresh_tokens')
        .select('id')
        .where('user_id', '=', user.id)
        .where('status', '=', 'active')
        .execute()
      expect(active).toHaveLength(0)
    })

    it('stores only hashes of refresh tokens', async () => {
      const { tokens, user } = await registerAndLogin(app)
      const rows = await app.server.tessera.db
        .selectFrom('refresh_tokens')
        .select('token_hash')
        .where('user_id', '=', user.id)
        .execute()
      expect(rows).toHaveLength(1)
      expect(rows[0]!.token_hash).not.toContain(tokens.refresh_token.slice('tessera_rt_'.length))
    })

    it('garbage, unknown and over-long tokens are refused', async () => {
      // invalid_refresh_token or validation_failed.
      for (const bad of [
        'x',
        `tessera_rt_${'A'.repeat(43)}`,
        'v4.public.abc',
        `tessera_rt_${'!'.repeat(43)}`,
      ]) {
        await expectProblem(await refresh(app, bad), 401, 'invalid_refresh_token')
      }
      await expectProblem(await refresh(app, 'x'.repeat(513)), 400, 'validation_failed')
      for (const body of [
        {},
        { refresh_token: 42 },
        { refresh_token: null },
        { refresh_token: '' },
      ]) {
        const res = await app.request('/v1/user/auth/refresh', { json: body })
        const problem = await expectProblem(res, 400, 'validation_failed')
        expect(problem.detail).toContain('refresh_token')
      }
    })

    it('access and refresh tokens are not accepted for each other', async () => {
      const { tokens } = await registerAndLogin(app)
      await expectProblem(
        await refresh(app, tokens.access_token.slice(0, 500)),
        401,
        'invalid_refresh_token',
      )
      await expectProblem(
        await app.request('/v1/user/me', { token: tokens.refresh_token }),
        401,
        'unauthorized',
      )
    })
  })

  describe(`refresh expiry [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { REFRESH_TOKEN_TTL: '3600', SESSION_ABSOLUTE_TTL: '7200' },
      })
    })
    afterAll(() => app.close())

    it('a token unused for the idle TTL has expired and is invalid, not reuse', async () => {
      const { tokens } = await registerAndLogin(app)
      expect(tokens.refresh_expires_in).toBe(3600)
      app.clock.advance(3600 * 1000)
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'invalid_refresh_token')
    })

    it('a family cannot outlive its absolute expiry however often it refreshes', async () => {
      const { tokens } = await registerAndLogin(app)
      let current = tokens.refresh_token
      for (let i = 0; i < 3; i++) {
        app.clock.advance(3000 * 1000)
        const res = await refresh(app, current)
        if (i < 2) {
          const pair = await tokenPairOf(res)
          // The last token of the family expires with the session, not a full TTL later.
          if (i === 1) expect(pair.refresh_expires_in).toBe(7200 - 6000)
          current = pair.refresh_token
        } else {
          await expectProblem(res, 401, 'invalid_refresh_token')
        }
      }
    })
  })

  describe(`refresh reuse interval [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { REFRESH_REUSE_INTERVAL: '10' } })
    })
    afterAll(() => app.close())

    it('the immediate parent, within the interval, with an unused child', async () => {
      // A fresh pair, the lost child superseded.
      const { tokens } = await registerAndLogin(app)
      const lost = await refreshPair(app, tokens.refresh_token)
      app.clock.advance(9_999)
      const fresh = await refreshPair(app, tokens.refresh_token)
      expect(fresh.refresh_token).not.toBe(lost.refresh_token)
      expect((await refresh(app, fresh.refresh_token)).status).toBe(200)
    })

    it('presenting the superseded child is reuse: it means two holders of the family', async () => {
      const { tokens } = await registerAndLogin(app)
      const lost = await refreshPair(app, tokens.refresh_token)
      const fresh = await refreshPair(app, tokens.refresh_token)
      await expectProblem(await refresh(app, lost.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, fresh.refresh_token), 401, 'invalid_refresh_token')
    })

    it('at exactly the interval it is reuse', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      app.clock.advance(10_000)
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, child.refresh_token), 401, 'invalid_refresh_token')
    })

    it('a parent whose child was already used is reuse, even within the interval', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      const grandchild = await refreshPair(app, child.refresh_token)
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(
        await refresh(app, grandchild.refresh_token),
        401,
        'invalid_refresh_token',
      )
    })

    it('a grandparent is reuse, even within the interval', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      const grandchild = await refreshPair(app, child.refresh_token)
      // child is the immediate parent of the current (unused) grandchild: allowed...
      expect((await refresh(app, child.refresh_token)).status).toBe(200)
      // ...but the first token is two generations back.
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      // The superseded grandchild of a family revoked for reuse is a spent token: reuse again.
      await expectProblem(await refresh(app, grandchild.refresh_token), 401, 'refresh_token_reused')
    })

    it('concurrent retries of the parent in the interval leave one live token', async () => {
      const { tokens, user } = await registerAndLogin(app)
      await refresh(app, tokens.refresh_token)
      const results = await Promise.all(
        Array.from({ length: 10 }, () => refresh(app, tokens.refresh_token)),
      )
      expect(results.some((r) => r.status === 200)).toBe(true)
      const active = await app.server.tessera.db
        .selectFrom('refresh_tokens')
        .select('id')
        .where('user_id', '=', user.id)
        .where('status', '=', 'active')
        .execute()
      expect(active).toHaveLength(1)
    })

    it('a logged-out token inside the interval is still invalid', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      await app.request('/v1/user/auth/logout', { json: { refresh_token: child.refresh_token } })
      const res = await refresh(app, tokens.refresh_token)
      expect(res.status).toBe(401)
    })
  })
}
