import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { accountKey } from '../../src/rate-limit/limits.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { makeTestApp, type TestApp, testKeyEnv } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { expectProblem, login, PASSWORD, register, uniqueEmail } from '../support/users.js'

interface CounterRow {
  key: string
  points: number
}

function attempt(url: string, email: string, password: string): Promise<Response> {
  return fetch(`${url}/v1/user/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  })
}

async function counters(app: TestApp): Promise<CounterRow[]> {
  const { rows } = await sql<CounterRow>`select key, points from rate_limits`.execute(
    app.server.tessera.db,
  )
  return rows.map((r) => ({ key: r.key, points: Number(r.points) }))
}

/** A 429 with a usable Retry-After: whole seconds, at least 1, at most the window. */
async function expectRateLimited(res: Response, windowSeconds: number) {
  const retryAfter = res.headers.get('retry-after')
  const problem = await expectProblem(res, 429, 'rate_limited')
  expect(retryAfter).toMatch(/^\d+$/)
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
  expect(Number(retryAfter)).toBeLessThanOrEqual(windowSeconds)
  return problem
}

for (const dialect of dialects()) {
  describe(`login rate limit per IP [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_LOGIN_PER_IP: '3',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
          RATE_LIMIT_WINDOW: '600',
        },
      })
    })
    afterAll(() => app.close())

    it('the 4th login attempt from one address is 429 with Retry-After', async () => {
      // rate_limited, right password or not.
      const { email } = await register(app)
      await login(app, email)
      await expectProblem(
        await attempt(app.url, email, 'not-the-password'),
        401,
        'invalid_credentials',
      )
      await expectProblem(
        await attempt(app.url, uniqueEmail('ghost'), 'not-the-password'),
        401,
        'invalid_credentials',
      )
      await expectRateLimited(await attempt(app.url, email, PASSWORD), 600)
      await expectRateLimited(await attempt(app.url, uniqueEmail('other'), PASSWORD), 600)
      const rows = await counters(app)
      expect(rows.filter((r) => r.key.startsWith('login_ip:'))).toEqual([
        { key: expect.stringMatching(/127\.0\.0\.1$/), points: expect.any(Number) },
      ])
      expect(rows.find((r) => r.key.startsWith('login_ip:'))!.points).toBeGreaterThanOrEqual(4)
    })
  })

  describe(`login rate limit per account [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '3',
          RATE_LIMIT_LOGIN_PER_IP: '1000',
          RATE_LIMIT_REGISTER_PER_IP: '0',
        },
      })
    })
    afterAll(() => app.close())

    it('after 3 wrong passwords even the right one is 429', async () => {
      // Another account is unaffected.
      const { email } = await register(app)
      const other = await register(app)
      for (let i = 0; i < 3; i++) {
        await expectProblem(
          await attempt(app.url, email, `wrong-${i}-password`),
          401,
          'invalid_credentials',
        )
      }
      await expectRateLimited(await attempt(app.url, email, PASSWORD), 900)
      await expectRateLimited(await attempt(app.url, email, 'still-wrong-password'), 900)
      await login(app, other.email)
    })

    it('the account is the normalised address', async () => {
      // Case and spaces do not give fresh counters.
      const { email } = await register(app)
      for (const typed of [email.toUpperCase(), ` ${email} `, email]) {
        await expectProblem(
          await attempt(app.url, typed, 'not-the-password'),
          401,
          'invalid_credentials',
        )
      }
      await expectRateLimited(await attempt(app.url, email, PASSWORD), 900)
    })

    it('an unknown email is limited the same way', async () => {
      // 429 after 3 failures, so the limit reveals nothing.
      const ghost = uniqueEmail('ghost')
      for (let i = 0; i < 3; i++) {
        await expectProblem(
          await attempt(app.url, ghost, 'not-the-password'),
          401,
          'invalid_credentials',
        )
      }
      await expectRateLimited(await attempt(app.url, ghost, 'not-the-password'), 900)
    })

    it('concurrent guesses cannot overrun the limit', async () => {
      // Of 20 at once exactly 3 reach the password check.
      const { email, user } = await register(app)
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => attempt(app.url, email, `concurrent-guess-${i}`)),
      )
      const statuses = results.map((r) => r.status)
      expect(statuses.filter((s) => s === 401)).toHaveLength(3)
      expect(statuses.filter((s) => s === 429)).toHaveLength(17)
      const failures = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('id')
        .where('event', '=', 'login_failed')
        .where('user_id', '=', user.id)
        .execute()
      expect(failures).toHaveLength(3)
      await expectRateLimited(await attempt(app.url, email, PASSWORD), 900)
    })

    it('guessing the current password with a stolen token is limited', async () => {
      // Like logins.
      const { email } = await register(app)
      const { access_token } = await login(app, email)
      const change = (current: string) =>
        app.request('/v1/user/password', {
          token: access_token,
          json: { current_password: current, new_password: 'another plausible lantern 77' },
        })
      for (let i = 0; i < 3; i++)
        await expectProblem(await change(`wrong-${i}-password`), 401, 'invalid_credentials')
      await expectRateLimited(await change(PASSWORD), 900)
    })

    it("a counted attempt survives another request's transaction rolling back", async () => {
      const email = uniqueEmail('rollback')
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      // Another request's transaction is open on the shared connection and will roll back.
      const rolledBack = app.server.tessera.db
        .transaction()
        .execute(async (tx) => {
          await sql`select 1`.execute(tx)
          await held
          throw new Error('roll back')
        })
        .catch(() => undefined)
      const attemptDone = attempt(app.url, email, 'some-wrong-password')
      await new Promise((r) => setTimeout(r, 200))
      release()
      await rolledBack
      await expectProblem(await attemptDone, 401, 'invalid_credentials')
      const rows = (await counters(app)).filter((r) =>
        r.key.endsWith(accountKey(email.toLowerCase())),
      )
      expect(rows).toHaveLength(1)
      expect(rows[0]!.points).toBe(1)
    })

    it('a successful login resets the account counter', async () => {
      const { email } = await register(app)
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 2; i++) {
          await expectProblem(
            await attempt(app.url, email, 'not-the-password'),
            401,
            'invalid_credentials',
          )
        }
        // 2 failures per round: 6 in all, but never 3 without a success in between.
        await login(app, email)
      }
    })

    it('counters live in rate_limits, keyed by a hash of the address', async () => {
      // Never the address itself.
      const { email } = await register(app)
      await attempt(app.url, email, 'not-the-password')
      await attempt(app.url, email, 'not-the-password')
      const rows = await counters(app)
      const key = `login_acct:${accountKey(email.toLowerCase())}`
      expect(rows).toContainEqual({ key, points: 2 })
      for (const row of rows) {
        expect(row.key).not.toContain('@')
        expect(row.key.toLowerCase()).not.toContain(email.split('@')[0]!.toLowerCase())
      }
    })

    it('counters are shared by replicas', async () => {
      // Failures on two servers over one database add up.
      const replica: RunningServer = await startServer(
        loadConfig({
          HOST: '127.0.0.1',
          PORT: '0',
          DATABASE_URL: app.databaseUrl,
          LOG_LEVEL: 'silent',
          ...testKeyEnv(app.databaseUrl),
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '3',
          RATE_LIMIT_LOGIN_PER_IP: '1000',
        }),
      )
      try {
        const { email } = await register(app)
        await expectProblem(
          await attempt(app.url, email, 'not-the-password'),
          401,
          'invalid_credentials',
        )
        await expectProblem(
          await attempt(replica.url, email, 'not-the-password'),
          401,
          'invalid_credentials',
        )
        await expectProblem(
          await attempt(app.url, email, 'not-the-password'),
          401,
          'invalid_credentials',
        )
        await expectRateLimited(await attempt(replica.url, email, PASSWORD), 900)
        await expectRateLimited(await attempt(app.url, email, PASSWORD), 900)
      } finally {
        await replica.close()
      }
    })
  })

  describe(`rate-limit windows end [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_WINDOW: '1',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '2',
          RATE_LIMIT_LOGIN_PER_IP: '1000',
        },
      })
    })
    afterAll(() => app.close())

    it('a locked account can log in again once the window has passed', async () => {
      const { email } = await register(app)
      for (let i = 0; i < 2; i++) {
        await expectProblem(
          await attempt(app.url, email, 'not-the-password'),
          401,
          'invalid_credentials',
        )
      }
      await expectRateLimited(await attempt(app.url, email, PASSWORD), 1)
      // The counters use the real clock (they are shared with other replicas).
      await new Promise((resolve) => setTimeout(resolve, 1_200))
      await login(app, email)
    })
  })

  describe(`registration rate limit per IP [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { RATE_LIMIT_REGISTER_PER_IP: '2' } })
    })
    afterAll(() => app.close())

    it('the third registration from one address is 429 and creates nothing', async () => {
      await register(app)
      await register(app)
      const email = uniqueEmail('third')
      await expectRateLimited(
        await app.request('/v1/user/auth/register', { json: { email, password: PASSWORD } }),
        900,
      )
      const users = await app.server.tessera.db.selectFrom('users').select('email').execute()
      expect(users).toHaveLength(2)
      expect(users.map((u) => u.email)).not.toContain(email)
      const rows = await counters(app)
      expect(rows.filter((r) => r.key.startsWith('register_ip:')).map((r) => r.points)).toEqual([3])
      // Logging in is a different counter.
      await login(app, (users[0] as { email: string }).email)
    })
  })

  describe(`without trusted proxy, X-Forwarded-For does not dodge the limit [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_LOGIN_PER_IP: '2', RATE_LIMIT_LOGIN_PER_ACCOUNT: '0' },
      })
    })
    afterAll(() => app.close())

    it('a forged X-Forwarded-For is ignored when TRUST_PROXY is unset', async () => {
      for (let i = 0; i < 3; i++) {
        const res = await app.request('/v1/user/auth/login', {
          json: { email: uniqueEmail('ghost'), password: 'not-the-password' },
          headers: { 'x-forwarded-for': `203.0.113.${i}` },
        })
        if (i < 2) await expectProblem(res, 401, 'invalid_credentials')
        else await expectRateLimited(res, 900)
      }
    })
  })

  // The entry the trusted proxy appended to X-Forwarded-For is the client.
  describe(`behind a trusted proxy, its X-Forwarded-For entry [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          TRUST_PROXY: '127.0.0.1',
          RATE_LIMIT_LOGIN_PER_IP: '2',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
        },
      })
    })
    afterAll(() => app.close())

    const attemptVia = (forwardedFor: string) =>
      app.request('/v1/user/auth/login', {
        json: { email: uniqueEmail('ghost'), password: 'not-the-password' },
        headers: { 'x-forwarded-for': forwardedFor },
      })

    it('each client address has its own counter', async () => {
      // Entries the client prepends are ignored.
      await expectProblem(await attemptVia('198.51.100.7'), 401, 'invalid_credentials')
      // The client forges earlier entries; the proxy appended the real address last.
      await expectProblem(await attemptVia('203.0.113.1, 198.51.100.7'), 401, 'invalid_credentials')
      await expectRateLimited(await attemptVia('203.0.113.2, 198.51.100.7'), 900)
      // Another client behind the same proxy is unaffected.
      await expectProblem(await attemptVia('198.51.100.8'), 401, 'invalid_credentials')
      const keys = (await counters(app)).map((r) => r.key).filter((k) => k.startsWith('login_ip:'))
      expect(keys.sort()).toEqual(['login_ip:198.51.100.7', 'login_ip:198.51.100.8'])
    })
  })
  // X-Forwarded-For is read only from the proxies TRUST_PROXY lists.
  describe(`TRUST_PROXY lists the proxies [${dialect}]`, () => {
    const ipKeys = async (app: TestApp) =>
      (await counters(app))
        .map((r) => r.key)
        .filter((k) => k.startsWith('login_ip:'))
        .sort()
    const attemptVia = (app: TestApp, forwardedFor: string) =>
      app.request('/v1/user/auth/login', {
        json: { email: uniqueEmail('ghost'), password: 'not-the-password' },
        headers: { 'x-forwarded-for': forwardedFor },
      })

    it('a client that reaches the server directly cannot choose its address', async () => {
      // The proxies are elsewhere; the test client connects from 127.0.0.1, untrusted.
      const app = await makeTestApp({ dialect, env: { TRUST_PROXY: '10.0.0.0/8, fd00::/8' } })
      try {
        await expectProblem(await attemptVia(app, '198.51.100.7'), 401, 'invalid_credentials')
        await expectProblem(
          await attemptVia(app, '10.0.0.5, 198.51.100.8'),
          401,
          'invalid_credentials',
        )
        expect(await ipKeys(app)).toEqual(['login_ip:127.0.0.1'])
      } finally {
        await app.close()
      }
    })

    it('an entry with a port (ip:port, [v6]:port) names its address, not the proxy', async () => {
      const app = await makeTestApp({ dialect, env: { TRUST_PROXY: '127.0.0.1' } })
      try {
        for (const entry of ['198.51.100.4:5678', '[2001:db8::4]:443', '[2001:db8::5]']) {
          await expectProblem(await attemptVia(app, entry), 401, 'invalid_credentials')
        }
        expect(await ipKeys(app)).toEqual([
          'login_ip:198.51.100.4',
          'login_ip:2001:db8::4',
          'login_ip:2001:db8::5',
        ])
      } finally {
        await app.close()
      }
    })

    it('through trusted proxies the client is the right-most untrusted entry', async () => {
      // The IPv4-mapped spelling of the peer matches it too.
      const app = await makeTestApp({
        dialect,
        env: { TRUST_PROXY: '::ffff:127.0.0.1,10.0.0.0/8,2001:db8::/32' },
      })
      try {
        await expectProblem(
          await attemptVia(app, '203.0.113.9, 198.51.100.1, 10.1.2.3, 10.0.0.1'),
          401,
          'invalid_credentials',
        )
        await expectProblem(
          await attemptVia(app, '198.51.100.2, 2001:db8::1'),
          401,
          'invalid_credentials',
        )
        await expectProblem(
          await attemptVia(app, '2001:db8:1::5, ::ffff:198.51.100.3'),
          401,
          'invalid_credentials',
        )
        // Only trusted hops: the farthest of them is the best answer.
        await expectProblem(await attemptVia(app, '10.9.9.9, 10.0.0.1'), 401, 'invalid_credentials')
        // Garbage where an address belongs: the proxy that wrote it is the client.
        await expectProblem(await attemptVia(app, 'unknown, 10.0.0.7'), 401, 'invalid_credentials')
        expect(await ipKeys(app)).toEqual([
          'login_ip:10.0.0.7',
          'login_ip:10.9.9.9',
          'login_ip:198.51.100.1',
          'login_ip:198.51.100.2',
          'login_ip:198.51.100.3',
        ])
      } finally {
        await app.close()
      }
    })
  })
}
