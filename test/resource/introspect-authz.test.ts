import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  registerAndLogin,
  uniqueEmail,
} from '../support/users.js'

const SECRET = 'introspection-shared-secret-0123456789'

for (const dialect of dialects()) {
  describe(`POST /v1/token/introspect [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { SERVICE_SECRET: SECRET } })
    })
    afterAll(() => app.close())

    const introspect = (
      token: string,
      auth: Record<string, string> = { 'x-service-secret': SECRET },
    ) =>
      app.request('/v1/token/introspect', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...auth },
        body: new URLSearchParams({ token }).toString(),
      })

    it('answers active with integer times for a live access token', async () => {
      // Form and JSON bodies.
      const { tokens, user } = await registerAndLogin(app)
      const res = await introspect(tokens.access_token)
      expect(res.status).toBe(200)
      expect(res.headers.get('cache-control')).toBe('no-store')
      const body = (await res.json()) as Record<string, unknown>
      expect(body).toMatchObject({
        active: true,
        sub: user.id,
        acct: 'regular',
        verified: false,
        token_type: 'Bearer',
        aud: 'tessera',
      })
      for (const claim of ['exp', 'iat', 'nbf']) expect(Number.isInteger(body[claim])).toBe(true)
      expect((body.exp as number) - (body.iat as number)).toBe(900)
      const viaJson = await app.request('/v1/token/introspect', {
        json: { token: tokens.access_token },
        headers: { 'x-service-secret': SECRET },
      })
      expect(((await viaJson.json()) as { active: boolean }).active).toBe(true)
    })

    it('answers exactly {"active": false} for every other token', async () => {
      // Garbage, refresh tokens, logged-out and reused sessions.
      const { tokens } = await registerAndLogin(app)
      const other = await registerAndLogin(app)
      const inactive = async (token: string) => {
        const res = await introspect(token)
        expect(res.status).toBe(200)
        expect(await res.text()).toBe('{"active":false}')
      }
      await inactive('garbage')
      await inactive(tokens.refresh_token)
      await inactive(`${tokens.access_token.slice(0, -3)}AAA`)
      // Logout shows immediately, although the access token itself has not expired.
      await app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      await inactive(tokens.access_token)
      // So does reuse revocation (after the reuse interval).
      await refresh(app, other.tokens.refresh_token)
      app.clock.advance(10_000)
      await refresh(app, other.tokens.refresh_token)
      await inactive(other.tokens.access_token)
    })

    it('a service account bearer token may introspect; a regular one or none may not', async () => {
      const { tokens } = await registerAndLogin(app)
      const email = uniqueEmail('svc')
      const created = await app.request('/v1/user/auth/register-service', {
        json: { email, password: PASSWORD },
        headers: { 'x-service-secret': SECRET },
      })
      expect(created.status).toBe(201)
      const service = await login(app, email)
      const ok = await introspect(tokens.access_token, {
        authorization: `Bearer ${service.access_token}`,
      })
      expect(((await ok.json()) as { active: boolean }).active).toBe(true)
      await expectProblem(
        await introspect(tokens.access_token, { authorization: `Bearer ${tokens.access_token}` }),
        401,
        'unauthorized',
      )
      await expectProblem(await introspect(tokens.access_token, {}), 401, 'unauthorized')
      await expectProblem(
        await introspect(tokens.access_token, { 'x-service-secret': 'wrong' }),
        401,
        'unauthorized',
      )
    })
  })

  describe(`GET /v1/authz forward auth [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    it('answers 200 with identity headers for a valid token and 401 otherwise', async () => {
      const { tokens, user } = await registerAndLogin(app)
      const res = await app.request('/v1/authz', { token: tokens.access_token })
      expect(res.status).toBe(200)
      expect(res.headers.get('x-auth-subject')).toBe(user.id)
      expect(res.headers.get('x-auth-account-type')).toBe('regular')
      expect(res.headers.get('x-auth-verified')).toBe('false')
      const missing = await app.request('/v1/authz')
      await expectProblem(missing, 401, 'unauthorized')
      expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="tessera"')
      const bad = await app.request('/v1/authz', { token: 'v4.public.garbage' })
      await expectProblem(bad, 401, 'unauthorized')
      expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"')
    })
  })

  describe(`sequence-archive compatibility [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    it('registers with full_name and a self-assignable role (a role claim)', async () => {
      const email = uniqueEmail('archive')
      const res = await app.request('/api/v1/auth/register', {
        json: { email, password: PASSWORD, full_name: 'Rosalind Franklin', role: 'researcher' },
      })
      expect(res.status).toBe(201)
      const body = (await res.json()) as Record<string, unknown>
      expect(body).toEqual({
        id: expect.any(String),
        email,
        full_name: 'Rosalind Franklin',
        role: 'researcher',
      })
      const loginRes = await app.request('/api/v1/auth/login', {
        json: { email, password: PASSWORD },
      })
      expect(loginRes.status).toBe(200)
      const pair = (await loginRes.json()) as {
        access_token: string
        refresh_token: string
        expires_in: number
      }
      expect(pair.expires_in).toBe(900)
      const payload = JSON.parse(
        Buffer.from(pair.access_token.split('.')[2]!, 'base64url').subarray(0, -64).toString(),
      ) as Record<string, unknown>
      expect(payload.role).toBe('researcher')
      // The same account on the native path.
      const me = await app.request('/v1/user/me', { token: pair.access_token })
      expect(((await me.json()) as { display_name: string }).display_name).toBe('Rosalind Franklin')
      // Unlike the archive, a refresh token is not an access token, and refresh exists.
      expect((await app.request('/v1/user/me', { token: pair.refresh_token })).status).toBe(401)
      expect((await refresh(app, pair.refresh_token)).status).toBe(200)
    })

    it('refuses administrative or unknown roles', async () => {
      for (const role of ['admin', 'superuser', 'curator']) {
        const res = await app.request('/api/v1/auth/register', {
          json: { email: uniqueEmail('archive'), password: PASSWORD, full_name: 'X', role },
        })
        const problem = await expectProblem(res, 400, 'validation_failed')
        expect(problem.detail).toContain('role')
      }
    })
  })
}
