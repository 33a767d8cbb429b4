/**
 * The hot reads run as named statements on PostgreSQL (docs/performance.md, "Named statements"):
 * the session check of introspection and of every bearer route, and `GET /v1/user/me`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { recordQueries, type SeenQuery } from '../support/queries.js'
import { registerAndLogin } from '../support/users.js'

const SECRET = 'named-statements-service-secret-0123456789'

function sessionIdOf(accessToken: string): string {
  const bytes = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  // v4.public: the claims JSON, then a 64-byte signature.
  return (JSON.parse(bytes.subarray(0, bytes.length - 64).toString('utf8')) as { sid: string }).sid
}

for (const dialect of dialects().filter((d) => d === 'postgres')) {
  describe('hot reads on PostgreSQL run by name', () => {
    let app: TestApp
    let seen: SeenQuery[]
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { SERVICE_SECRET: SECRET } })
      const client = app.server.tessera.database.client
      if (client.dialect !== 'postgres') throw new Error('expected PostgreSQL')
      seen = recordQueries(client.pool)
    })
    afterAll(() => app.close())

    /** The statements `run` sent that carry `sessionId`. */
    async function statementsOf(sessionId: string, run: () => Promise<Response>) {
      const from = seen.length
      const res = await run()
      expect(res.status, await res.clone().text()).toBe(200)
      return seen.slice(from).filter((q) => q.parameters.includes(sessionId))
    }

    it('GET /v1/user/me: one named statement, the same on every request', async () => {
      const { tokens } = await registerAndLogin(app)
      const sid = sessionIdOf(tokens.access_token)
      const me = () => app.request('/v1/user/me', { token: tokens.access_token })
      const first = await statementsOf(sid, me)
      const second = await statementsOf(sid, me)
      expect(first).toHaveLength(1)
      expect(first[0]!.name).toMatch(/^tessera_[0-9a-f]{24}$/)
      expect(second.map((q) => q.name)).toEqual([first[0]!.name])
      // The user's columns are listed: never `u.*`, never the password hash.
      expect(first[0]!.sql).not.toMatch(/\.\*|password_hash/)
    })

    it('introspection and a bearer route check the session by the same name', async () => {
      const { tokens } = await registerAndLogin(app)
      const sid = sessionIdOf(tokens.access_token)
      const introspection = await statementsOf(sid, () =>
        app.request('/v1/token/introspect', {
          json: { token: tokens.access_token },
          headers: { 'x-service-secret': SECRET },
        }),
      )
      const bearerRoute = await statementsOf(sid, () =>
        app.request('/v1/user/sessions', { token: tokens.access_token }),
      )
      expect(introspection).toHaveLength(1)
      expect(introspection[0]!.name).toMatch(/^tessera_[0-9a-f]{24}$/)
      expect(bearerRoute.map((q) => q.name)).toContain(introspection[0]!.name)
    })
  })
}
