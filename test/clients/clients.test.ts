/**
 * Service clients (README, "Service clients"): made by the real `tessera client` command against
 * the app's database, authenticated with HTTP Basic and form fields, each limited to its
 * permissions, the client_credentials grant through the real app, and revocation of one client.
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { runCli } from '../support/process.js'
import { expectProblem, PASSWORD, registerAndLogin, uniqueEmail } from '../support/users.js'

const SERVICE_SECRET = 'clients-test-service-secret-0123456789'

interface Created {
  id: string
  secret: string
}

/** RFC 6749 §2.3.1: id and secret form-encoded, then base64. */
function basic(id: string, secret: string): string {
  const pair = `${encodeURIComponent(id)}:${encodeURIComponent(secret)}`
  return `Basic ${Buffer.from(pair).toString('base64')}`
}

/** The claims of a v4.public token, read without verifying (the app verifies). */
function claimsOf(token: string): Record<string, unknown> {
  const body = Buffer.from(token.split('.')[2]!, 'base64url')
  return JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as Record<string, unknown>
}

for (const dialect of dialects()) {
  // Each test runs the `tessera client` command as processes: on a loaded machine (CI runs three
  // files at once) those took more than the default 30 s.
  describe(`service clients [${dialect}]`, { timeout: 90_000 }, () => {
    let app: TestApp
    const lines: string[] = []

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        // The most verbose level, so that nothing logged escapes the secret checks.
        logger: pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) }),
        env: {
          SERVICE_SECRET,
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
          RATE_LIMIT_CLIENT_AUTH_PER_CLIENT: '0',
          RATE_LIMIT_CLIENT_AUTH_PER_IP: '0',
        },
      })
    }, 60_000)
    afterAll(() => app?.close())

    const cli = (args: string[]) => runCli(args, { databaseUrl: app.databaseUrl })

    async function createClient(permissions: string): Promise<Created> {
      const args = ['client', 'create', `svc-${permissions || 'none'}`]
      if (permissions !== '') args.push('--permission', permissions)
      const result = await cli(args)
      expect(result.code, result.stderr).toBe(0)
      const id = /^client_id +(\S+)$/m.exec(result.stdout)?.[1]
      const secret = /^client_secret +(tsr_cs_[A-Za-z0-9_-]{43})$/m.exec(result.stdout)?.[1]
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      expect(secret).toBeDefined()
      return { id: id!, secret: secret! }
    }

    const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(fields).toString(),
    })

    async function clientToken(client: Created, fields: Record<string, string> = {}) {
      const res = await app.request(
        '/v1/oauth/token',
        form(
          { grant_type: 'client_credentials', ...fields },
          {
            authorization: basic(client.id, client.secret),
          },
        ),
      )
      expect(res.status, await res.clone().text()).toBe(200)
      return (await res.json()) as Record<string, unknown> & { access_token: string }
    }

    const introspect = (token: string, headers: Record<string, string>, extra = {}) =>
      app.request('/v1/token/introspect', form({ token, ...extra }, headers))

    const authz = (token: string) => app.request('/v1/authz', { token })

    it('`client create` prints id and secret once, `client list` never the secret', async () => {
      const created = await createClient('introspect,read-users')
      const listed = await cli(['client', 'list'])
      expect(listed.code).toBe(0)
      const line = listed.stdout.split('\n').find((l) => l.includes(created.id))
      expect(line).toMatch(
        /^active +\S+ svc-introspect,read-users \[introspect,read-users\] created /,
      )
      expect(listed.stdout).not.toContain(created.secret)
      expect(listed.stdout).not.toContain('tsr_cs_')

      const unknown = await cli(['client', 'create', 'bad', '--permission', 'introspect,admin'])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain('Unknown permission admin')
      expect((await cli(['client', 'create'])).code).toBe(2)
      expect((await cli(['client', 'revoke', '00000000-0000-4000-8000-000000000000'])).code).toBe(1)
    })

    it('client_credentials: a token for the client, not an account, no refresh token', async () => {
      const client = await createClient('')
      const issued = await clientToken(client)
      expect(issued).toEqual({
        access_token: expect.stringMatching(/^v4\.public\./),
        token_type: 'Bearer',
        expires_in: 900,
      })
      const claims = claimsOf(issued.access_token)
      expect(claims).toMatchObject({
        sub: client.id,
        sid: client.id,
        acct: 'client',
        client_id: client.id,
        aud: 'tessera',
        verified: false,
      })
      expect(claims).not.toHaveProperty('email')

      // The form fields (client_secret_post) work as Basic does.
      const posted = await app.request(
        '/v1/oauth/token',
        form({
          grant_type: 'client_credentials',
          client_id: client.id,
          client_secret: client.secret,
        }),
      )
      expect(posted.status).toBe(200)
      expect(await posted.json()).not.toHaveProperty('refresh_token')

      // Forward auth takes it, and says it is a client.
      const forwarded = await authz(issued.access_token)
      expect(forwarded.status).toBe(200)
      expect(forwarded.headers.get('x-auth-account-type')).toBe('client')
      expect(forwarded.headers.get('x-auth-subject')).toBe(client.id)

      // Never on the account routes.
      for (const [method, path] of [
        ['GET', '/v1/user/me'],
        ['GET', '/v1/user/sessions'],
        ['POST', '/v1/user/auth/logout-all'],
      ] as const) {
        await expectProblem(
          await app.request(path, { method, token: issued.access_token }),
          401,
          'unauthorized',
        )
      }

      // The audience: the configured one by resource or audience, nothing else.
      expect(claimsOf((await clientToken(client, { resource: 'tessera' })).access_token).aud).toBe(
        'tessera',
      )
      expect(claimsOf((await clientToken(client, { audience: 'tessera' })).access_token).aud).toBe(
        'tessera',
      )
      const other = await app.request(
        '/v1/oauth/token',
        form(
          { grant_type: 'client_credentials', resource: 'elsewhere' },
          {
            authorization: basic(client.id, client.secret),
          },
        ),
      )
      expect(other.status).toBe(400)
      expect(await other.json()).toMatchObject({ code: 'invalid_target', error: 'invalid_target' })
    })

    it('introspection with Basic and with form fields needs `introspect`', async () => {
      const { tokens } = await registerAndLogin(app)
      const allowed = await createClient('introspect')
      const other = await createClient('read-users')

      const byBasic = await introspect(tokens.access_token, {
        authorization: basic(allowed.id, allowed.secret),
      })
      expect(byBasic.status).toBe(200)
      expect(await byBasic.json()).toMatchObject({ active: true, acct: 'regular' })
      const byPost = await introspect(
        tokens.access_token,
        {},
        { client_id: allowed.id, client_secret: allowed.secret },
      )
      expect(await byPost.json()).toMatchObject({ active: true })
      // A client token introspects as active while its client lives.
      const own = await clientToken(other)
      const ofClient = await introspect(own.access_token, {
        authorization: basic(allowed.id, allowed.secret),
      })
      expect(await ofClient.json()).toMatchObject({ active: true, acct: 'client', sub: other.id })

      await expectProblem(
        await introspect(tokens.access_token, { authorization: basic(other.id, other.secret) }),
        403,
        'permission_required',
      )
      // The shared secret keeps working, and a client token is no service account's.
      const shared = await introspect(tokens.access_token, { 'x-service-secret': SERVICE_SECRET })
      expect(await shared.json()).toMatchObject({ active: true })
      await expectProblem(
        await introspect(tokens.access_token, { authorization: `Bearer ${own.access_token}` }),
        401,
        'unauthorized',
      )
    })

    it('service registration needs `register-service`; the shared secret still works', async () => {
      const allowed = await createClient('register-service')
      const other = await createClient('introspect')
      const register = (headers: Record<string, string>) =>
        app.request('/v1/user/auth/register-service', {
          headers,
          json: { email: uniqueEmail('svc'), password: PASSWORD },
        })
      const created = await register({ authorization: basic(allowed.id, allowed.secret) })
      expect(created.status).toBe(201)
      expect(await created.json()).toMatchObject({ account_type: 'service', verified: true })
      await expectProblem(
        await register({ authorization: basic(other.id, other.secret) }),
        403,
        'permission_required',
      )
      expect((await register({ 'x-service-secret': SERVICE_SECRET })).status).toBe(201)
    })

    it('GET /v1/service/users/{id} needs `read-users` and answers the public profile', async () => {
      const { user } = await registerAndLogin(app)
      const reader = await createClient('read-users')
      const other = await createClient('introspect')
      const read = (id: string, headers: Record<string, string>) =>
        app.request(`/v1/service/users/${id}`, { headers })
      const profile = await read(user.id, { authorization: basic(reader.id, reader.secret) })
      expect(profile.status).toBe(200)
      const body = (await profile.json()) as Record<string, unknown>
      expect(body).toMatchObject({ id: user.id, account_type: 'regular', verified: false })
      expect(body).not.toHaveProperty('email')
      await expectProblem(
        await read(user.id, { authorization: basic(other.id, other.secret) }),
        403,
        'permission_required',
      )
      await expectProblem(await read(user.id, {}), 401, 'invalid_client_credentials')
      await expectProblem(
        await read('00000000-0000-4000-8000-000000000000', {
          authorization: basic(reader.id, reader.secret),
        }),
        404,
        'not_found',
      )
    })

    it('revoking one client ends its secret and tokens; other clients keep working', async () => {
      const revoked = await createClient('introspect')
      const kept = await createClient('introspect')
      const revokedToken = (await clientToken(revoked)).access_token
      const keptToken = (await clientToken(kept)).access_token
      expect((await authz(revokedToken)).status).toBe(200)

      const result = await cli(['client', 'revoke', revoked.id])
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toContain(`revoked  ${revoked.id}`)

      // The app follows the revocation log the command wrote from its own process.
      await expect
        .poll(async () => (await authz(revokedToken)).status, { timeout: 5_000, interval: 50 })
        .toBe(401)
      const introspected = await introspect(revokedToken, {
        authorization: basic(kept.id, kept.secret),
      })
      expect(await introspected.json()).toEqual({ active: false })
      const again = await app.request(
        '/v1/oauth/token',
        form(
          { grant_type: 'client_credentials' },
          {
            authorization: basic(revoked.id, revoked.secret),
          },
        ),
      )
      expect(again.status).toBe(401)
      expect(await again.json()).toMatchObject({
        code: 'invalid_client_credentials',
        error: 'invalid_client',
      })

      expect((await authz(keptToken)).status).toBe(200)
      expect((await clientToken(kept)).access_token).toMatch(/^v4\.public\./)
      const listed = await cli(['client', 'list'])
      expect(listed.stdout).toMatch(new RegExp(`^revoked +${revoked.id} .* revoked `, 'm'))
      expect((await cli(['client', 'revoke', revoked.id])).stdout).toContain('(already)')
      // Creation, revocation and the refused use afterwards are audited, naming the client.
      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('event')
        .where('detail', 'like', `%${revoked.id}%`)
        .execute()
      expect(audit.map((e) => e.event).sort()).toEqual([
        'client_authentication_failed',
        'client_created',
        'client_revoked',
      ])
    })

    it('bad secrets are refused alike, audited, and never logged', async () => {
      const client = await createClient('introspect')
      const wrong = `tsr_cs_${'A'.repeat(43)}`
      const attempts: Array<Record<string, string>> = [
        { authorization: basic(client.id, wrong) },
        { authorization: basic('00000000-0000-4000-8000-000000000000', client.secret) },
        { authorization: basic(client.id, '') },
        { authorization: 'Basic !!!' },
        { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` },
      ]
      for (const headers of attempts) {
        const res = await app.request(
          '/v1/oauth/token',
          form({ grant_type: 'client_credentials' }, headers),
        )
        const text = await res.text()
        expect([res.status, JSON.parse(text).code], text).toEqual([
          401,
          'invalid_client_credentials',
        ])
        expect(res.headers.get('www-authenticate')).toBe('Basic realm="tessera"')
        expect(text).not.toContain(wrong)
      }
      const posted = await app.request(
        '/v1/oauth/token',
        form({ grant_type: 'client_credentials', client_id: client.id, client_secret: wrong }),
      )
      expect(posted.status).toBe(401)
      // One method per request (RFC 6749 §2.3).
      const both = await app.request(
        '/v1/oauth/token',
        form(
          { grant_type: 'client_credentials', client_id: client.id, client_secret: client.secret },
          { authorization: basic(client.id, client.secret) },
        ),
      )
      expect(both.status).toBe(400)
      // Introspection refuses the same way.
      await expectProblem(
        await introspect('x', { authorization: basic(client.id, wrong) }),
        401,
        'invalid_client_credentials',
      )

      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select(['event', 'detail'])
        .where('event', 'in', ['client_authentication_failed', 'client_created'])
        .execute()
      const failures = audit.filter((e) => e.event === 'client_authentication_failed')
      expect(failures.some((e) => e.detail?.includes(client.id))).toBe(true)
      expect(failures.some((e) => e.detail?.includes('wrong_secret'))).toBe(true)
      for (const e of audit) {
        expect(e.detail ?? '').not.toContain('tsr_cs_')
      }
      expect(lines.length).toBeGreaterThan(0)
      for (const line of lines) {
        expect(line).not.toContain(wrong)
        expect(line).not.toContain(client.secret)
        expect(line).not.toContain('tsr_cs_')
      }
    })
  })

  describe(`service client authentication limits [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_CLIENT_AUTH_PER_CLIENT: '2', RATE_LIMIT_CLIENT_AUTH_PER_IP: '4' },
      })
    }, 60_000)
    afterAll(() => app?.close())

    const grant = (id: string, secret: string) =>
      app.request('/v1/oauth/token', {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: basic(id, secret),
        },
        body: 'grant_type=client_credentials',
      })

    it('failures are limited per client id and address; the right secret never is', async () => {
      const created = await runCli(['client', 'create', 'limited'], {
        databaseUrl: app.databaseUrl,
      })
      const id = /^client_id +(\S+)$/m.exec(created.stdout)![1]!
      const secret = /^client_secret +(\S+)$/m.exec(created.stdout)![1]!
      const wrong = `tsr_cs_${'B'.repeat(43)}`
      const statuses = []
      for (let i = 0; i < 3; i++) statuses.push((await grant(id, wrong)).status)
      expect(statuses).toEqual([401, 401, 429])
      expect((await grant(id, secret)).status).toBe(200)
      // Per address: other ids from the same address run into its limit (4 failures a window).
      const unknown = '00000000-0000-4000-8000-000000000000'
      expect((await grant(unknown, wrong)).status).toBe(401)
      expect((await grant(unknown, wrong)).status).toBe(429)
      expect((await grant(id, secret)).status).toBe(200)
    })
  })
}
