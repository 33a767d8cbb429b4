import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashRefreshToken } from '../../src/sessions/refresh-token.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { recordQueries, type SeenQuery } from '../support/queries.js'
import { refresh, refreshPair, registerAndLogin, type TokenPairBody } from '../support/users.js'

/** Queries that carry this refresh's token hash or session id: the refresh's own statements. */
function queriesOf(seen: SeenQuery[], hash: string, sessionId: string): SeenQuery[] {
  return seen.filter((q) => q.parameters.some((p) => p === hash || p === sessionId))
}

function sessionIdOf(pair: TokenPairBody): string {
  const payload = pair.access_token.split('.')[2]!
  // v4.public: the claims JSON, then a 64-byte signature.
  const bytes = Buffer.from(payload, 'base64url')
  return (JSON.parse(bytes.subarray(0, bytes.length - 64).toString('utf8')) as { sid: string }).sid
}

for (const dialect of dialects().filter((d) => d === 'postgres')) {
  describe(`refresh on PostgreSQL: round trips [${dialect}]`, () => {
    let app: TestApp
    let seen: SeenQuery[]
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
      const client = app.server.tessera.database.client
      if (client.dialect !== 'postgres') throw new Error('expected PostgreSQL')
      seen = recordQueries(client.pool)
    })
    afterAll(() => app.close())

    it('a rotation is two named statements and no transaction (docs/performance.md)', async () => {
      const { tokens } = await registerAndLogin(app)
      const names: (string | undefined)[][] = []
      let current = tokens.refresh_token
      for (let i = 0; i < 5; i++) {
        const from = seen.length
        const next = await refreshPair(app, current)
        const during = seen.slice(from)
        const own = queriesOf(during, hashRefreshToken(current), sessionIdOf(next))
        // The read (by the token hash) and the one write (by the session id), nothing else.
        expect(own.map((q) => q.sql.trim().split(/\s+/)[0])).toEqual(['select', 'with'])
        // No BEGIN/COMMIT: each statement is its own transaction.
        expect(during.filter((q) => /^\s*(begin|commit)\b/i.test(q.sql))).toEqual([])
        names.push(own.map((q) => q.name))
        current = next.refresh_token
      }
      // Both run as named statements (docs/performance.md, "Named statements"), two names, the
      // same on every refresh.
      const [read, write] = names[0]!
      expect(read).toMatch(/^tessera_[0-9a-f]{24}$/)
      expect(write).toMatch(/^tessera_[0-9a-f]{24}$/)
      expect(read).not.toBe(write)
      expect(names).toEqual(names.map(() => [read, write]))
    })

    it('a named statement runs on any of the pooled connections', async () => {
      const users = await Promise.all(Array.from({ length: 8 }, () => registerAndLogin(app)))
      const from = seen.length
      // Concurrent refreshes make the pool hand out several connections.
      for (let round = 0; round < 3; round++) {
        const pairs = await Promise.all(
          users.map(async (u) => refreshPair(app, u.tokens.refresh_token)),
        )
        pairs.forEach((pair, i) => {
          users[i]!.tokens = pair
        })
      }
      const reads = seen.slice(from).filter((q) => q.sql.trim().startsWith('select t.id'))
      expect(reads).toHaveLength(24)
      expect(new Set(reads.map((q) => q.name)).size).toBe(1)
      expect(new Set(reads.map((q) => q.connection)).size).toBeGreaterThan(1)
    })

    it("another schema's app runs the same names against its own tables", async () => {
      // Each test app is a schema of its own, selected by its pool's search_path; a statement is
      // prepared per connection, so it resolves its tables in that connection's schema.
      const other = await makeTestApp({ dialect })
      try {
        const otherClient = other.server.tessera.database.client
        if (otherClient.dialect !== 'postgres') throw new Error('expected PostgreSQL')
        const otherSeen = recordQueries(otherClient.pool)
        const mine = await registerAndLogin(app)
        const theirs = await registerAndLogin(other)
        await refreshPair(app, mine.tokens.refresh_token)
        await refreshPair(other, theirs.tokens.refresh_token)
        const namesIn = (queries: SeenQuery[]) =>
          queries.filter((q) => /^\s*(select t\.id|with locked)/.test(q.sql)).map((q) => q.name)
        expect(namesIn(otherSeen)).toEqual(namesIn(seen).slice(-2))
        const sessionsOf = (on: TestApp, userId: string) =>
          on.server.tessera.db
            .selectFrom('sessions')
            .select('refresh_count')
            .where('user_id', '=', userId)
            .execute()
        expect(await sessionsOf(other, theirs.user.id)).toEqual([{ refresh_count: 1 }])
        expect(await sessionsOf(app, theirs.user.id)).toEqual([])
        expect(await sessionsOf(app, mine.user.id)).toEqual([{ refresh_count: 1 }])
      } finally {
        await other.close()
      }
    })

    it('a replay falls back to the general transaction and answers the same bytes', async () => {
      const { tokens } = await registerAndLogin(app)
      const first = await (await refresh(app, tokens.refresh_token)).text()
      const from = seen.length
      const again = await (await refresh(app, tokens.refresh_token)).text()
      expect(again).toBe(first)
      const during = seen.slice(from)
      expect(during.some((q) => /^\s*begin\b/i.test(q.sql))).toBe(true)
      // Nothing of the fast path's write ran: the read already saw a spent token.
      expect(during.some((q) => q.sql.trim().startsWith('with locked'))).toBe(false)
    })
  })
}

for (const dialect of dialects()) {
  describe(`a lost race writes nothing [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { RATE_LIMIT_REFRESH_PER_SESSION: '60' } })
    })
    afterAll(() => app.close())

    it('50 concurrent presentations count one refresh against the limit', async () => {
      const { tokens, user } = await registerAndLogin(app)
      const answers = await Promise.all(
        Array.from({ length: 50 }, async () => (await refresh(app, tokens.refresh_token)).text()),
      )
      expect(new Set(answers).size).toBe(1)
      const session = await app.server.tessera.db
        .selectFrom('sessions')
        .select(['refresh_count', 'revoked_at'])
        .where('user_id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(session).toEqual({ refresh_count: 1, revoked_at: null })
      const rows = await app.server.tessera.db
        .selectFrom('refresh_tokens')
        .select(['status'])
        .where('user_id', '=', user.id)
        .orderBy('created_at')
        .execute()
      expect(rows.map((r) => r.status).sort()).toEqual(['active', 'rotated'])
    })
  })
}
