import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashRefreshToken } from '../../src/sessions/refresh-token.js'
import { SWEEP_BATCH, sweepExpiredAnswers } from '../../src/sessions/replay.js'
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
      app = await makeTestApp({ dialect, env: { REFRESH_REUSE_INTERVAL: '0' } })
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

    const db = () => app.server.tessera.db
    /** The kept answer of a token's row: what the reuse interval stores (docs/refresh.md). */
    async function keptOn(token: string) {
      return db()
        .selectFrom('refresh_tokens')
        .select(['replay_sealed', 'replay_until'])
        .where('token_hash', '=', hashRefreshToken(token))
        .executeTakeFirstOrThrow()
    }
    async function familyTokens(userId: string) {
      return db()
        .selectFrom('refresh_tokens')
        .select(['token_hash', 'status'])
        .where('user_id', '=', userId)
        .execute()
    }

    it('the just-rotated parent again answers byte for byte what it answered', async () => {
      const { tokens, user } = await registerAndLogin(app)
      const first = await refresh(app, tokens.refresh_token)
      expect(first.status).toBe(200)
      const firstBytes = await first.text()
      app.clock.advance(9_999)
      const again = await refresh(app, tokens.refresh_token)
      expect(again.status).toBe(200)
      expect(again.headers.get('content-type')).toBe(first.headers.get('content-type'))
      expect(await again.text()).toBe(firstBytes)
      // Nothing was issued or revoked: the login's token and its one child, which still works.
      const rows = await familyTokens(user.id)
      expect(rows.map((r) => r.status).sort()).toEqual(['active', 'rotated'])
      const child = JSON.parse(firstBytes) as TokenPairBody
      const me = await app.request('/v1/user/me', { token: child.access_token })
      expect(me.status).toBe(200)
      expect((await refresh(app, child.refresh_token)).status).toBe(200)
    })

    it('at exactly the interval it is reuse', async () => {
      // The family is revoked, the child with it.
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      app.clock.advance(10_000)
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, child.refresh_token), 401, 'invalid_refresh_token')
      expect(await keptOn(tokens.refresh_token)).toEqual({
        replay_sealed: null,
        replay_until: null,
      })
    })

    it('a parent whose child was already used is reuse, even within the interval', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      const grandchild = await refreshPair(app, child.refresh_token)
      // The child's rotation deleted the answer its parent kept, in the same transaction.
      expect(await keptOn(tokens.refresh_token)).toEqual({
        replay_sealed: null,
        replay_until: null,
      })
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(
        await refresh(app, grandchild.refresh_token),
        401,
        'invalid_refresh_token',
      )
      // The family's revocation deleted the child's kept answer too.
      expect(await keptOn(child.refresh_token)).toEqual({
        replay_sealed: null,
        replay_until: null,
      })
    })

    it('a grandparent is reuse, even within the interval', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      const grandchild = await refreshPair(app, child.refresh_token)
      // child is the immediate parent of the current (unused) grandchild: its answer again...
      expect((await refreshPair(app, child.refresh_token)).refresh_token).toBe(
        grandchild.refresh_token,
      )
      // ...but the first token is two generations back.
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(
        await refresh(app, grandchild.refresh_token),
        401,
        'invalid_refresh_token',
      )
    })

    it('50 concurrent presentations of one token: one child, 50 identical answers', async () => {
      const { tokens, user } = await registerAndLogin(app)
      const answers = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const res = await refresh(app, tokens.refresh_token)
          return { status: res.status, text: await res.text() }
        }),
      )
      expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200))
      expect(new Set(answers.map((a) => a.text)).size).toBe(1)
      // Exactly one child was ever issued: two distinct tokens in the family, one of them active.
      const rows = await familyTokens(user.id)
      expect(new Set(rows.map((r) => r.token_hash)).size).toBe(2)
      expect(rows.filter((r) => r.status === 'active')).toHaveLength(1)
      const session = await db()
        .selectFrom('sessions')
        .select('revoked_at')
        .where('user_id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(session.revoked_at).toBeNull()
      const child = JSON.parse(answers[0]!.text) as TokenPairBody
      expect((await refresh(app, child.refresh_token)).status).toBe(200)
    })

    it('concurrent retries of a just-rotated parent all get its first answer', async () => {
      const { tokens, user } = await registerAndLogin(app)
      const first = await (await refresh(app, tokens.refresh_token)).text()
      const retries = await Promise.all(
        Array.from({ length: 10 }, async () => (await refresh(app, tokens.refresh_token)).text()),
      )
      expect(retries).toEqual(Array(10).fill(first))
      expect(new Set((await familyTokens(user.id)).map((r) => r.token_hash)).size).toBe(2)
    })

    it('the kept answer is sealed, bound to its row, swept after the interval', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      const kept = await keptOn(tokens.refresh_token)
      expect(kept.replay_until).toBe(app.clock() + 10_000)
      // No token of the answer can be read from the row.
      for (const secret of [child.refresh_token, child.access_token]) {
        expect(kept.replay_sealed).not.toContain(secret)
        expect(kept.replay_sealed).not.toContain(secret.slice(-20))
      }
      // Moved to another token's row, the sealed answer does not open: that token is reuse.
      const other = await registerAndLogin(app)
      const otherChild = await refreshPair(app, other.tokens.refresh_token)
      await db()
        .updateTable('refresh_tokens')
        .set({ replay_sealed: kept.replay_sealed })
        .where('token_hash', '=', hashRefreshToken(other.tokens.refresh_token))
        .execute()
      await expectProblem(
        await refresh(app, other.tokens.refresh_token),
        401,
        'refresh_token_reused',
      )
      await expectProblem(
        await refresh(app, otherChild.refresh_token),
        401,
        'invalid_refresh_token',
      )

      // A sweep inside the interval leaves it; one at its end deletes it.
      const tessera = app.server.tessera
      app.clock.advance(9_999)
      await sweepExpiredAnswers(tessera)
      expect((await keptOn(tokens.refresh_token)).replay_sealed).not.toBeNull()
      app.clock.advance(1)
      expect(await sweepExpiredAnswers(tessera)).toBeGreaterThanOrEqual(1)
      expect(await keptOn(tokens.refresh_token)).toEqual({
        replay_sealed: null,
        replay_until: null,
      })
      // Swept, the family goes on: its child is the live token.
      expect((await refresh(app, child.refresh_token)).status).toBe(200)
    })

    it('a sweep clears every expired answer, in batches', async () => {
      const { tokens, user } = await registerAndLogin(app)
      await refresh(app, tokens.refresh_token)
      const row = await db()
        .selectFrom('refresh_tokens')
        .selectAll()
        .where('token_hash', '=', hashRefreshToken(tokens.refresh_token))
        .executeTakeFirstOrThrow()
      // More expired answers than one batch holds (rows of a stand-in family).
      const past = app.clock() - 1
      const extra = Array.from({ length: SWEEP_BATCH + 3 }, (_, i) => ({
        ...row,
        id: crypto.randomUUID(),
        token_hash: `sweep-${user.id}-${i}`,
        status: 'rotated' as const,
        replay_sealed: 'enc.v1.x.y.z',
        replay_until: past,
      }))
      await db().insertInto('refresh_tokens').values(extra).execute()
      expect(await sweepExpiredAnswers(app.server.tessera)).toBeGreaterThanOrEqual(SWEEP_BATCH + 3)
      const left = await db()
        .selectFrom('refresh_tokens')
        .select('id')
        .where('replay_until', '<=', app.clock())
        .execute()
      expect(left).toHaveLength(0)
    })

    it('a logged-out token inside the interval is still invalid', async () => {
      const { tokens } = await registerAndLogin(app)
      const child = await refreshPair(app, tokens.refresh_token)
      await app.request('/v1/user/auth/logout', { json: { refresh_token: child.refresh_token } })
      const res = await refresh(app, tokens.refresh_token)
      expect(res.status).toBe(401)
      expect(await keptOn(tokens.refresh_token)).toEqual({
        replay_sealed: null,
        replay_until: null,
      })
    })
  })
}
