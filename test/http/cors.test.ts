/**
 * CORS (README, "Browser front-ends on another origin"): an exact allow-list for the API, the
 * public documents for everyone, credentials only on the password logins, and what a
 * cross-origin request that needs no preflight can do (nothing). Header logic: SQLite only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { expectProblem, login, PASSWORD, register, uniqueEmail } from '../support/users.js'

const FRONT_END = 'https://app.example.org'
const LOCAL_FRONT_END = 'http://localhost:3000'
const STRANGER = 'https://evil.example'

const preflight = (app: TestApp, path: string, origin: string, method = 'POST') =>
  app.request(path, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': 'authorization, content-type',
    },
  })

function expectNoCors(res: Response) {
  for (const name of [
    'access-control-allow-origin',
    'access-control-allow-credentials',
    'access-control-allow-methods',
    'access-control-allow-headers',
    'access-control-expose-headers',
  ]) {
    expect(res.headers.get(name), name).toBeNull()
  }
}

const vary = (res: Response) => (res.headers.get('vary') ?? '').split(/\s*,\s*/)

describe('CORS [sqlite]', () => {
  let app: TestApp
  /** CORS_ORIGINS unset: no cross-origin access at all. */
  let closed: TestApp

  beforeAll(async () => {
    ;[app, closed] = await Promise.all([
      makeTestApp({ env: { CORS_ORIGINS: `${FRONT_END},${LOCAL_FRONT_END}` } }),
      makeTestApp(),
    ])
  })
  afterAll(() => Promise.all([app?.close(), closed?.close()]))

  it('a listed origin gets its preflight: methods, headers, max age, no credentials', async () => {
    for (const origin of [FRONT_END, LOCAL_FRONT_END]) {
      const res = await preflight(app, '/v1/user/me', origin, 'PATCH')
      expect(res.status).toBe(204)
      expect(await res.text()).toBe('')
      expect(res.headers.get('access-control-allow-origin')).toBe(origin)
      expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PATCH, DELETE')
      expect(res.headers.get('access-control-allow-headers')).toBe('Authorization, Content-Type')
      expect(res.headers.get('access-control-max-age')).toBe('600')
      expect(res.headers.get('access-control-allow-credentials')).toBeNull()
      expect(vary(res)).toContain('Origin')
    }
  })

  it('X-Service-Secret is never an allowed request header', async () => {
    const res = await app.request('/v1/user/auth/register-service', {
      method: 'OPTIONS',
      headers: {
        origin: FRONT_END,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, x-service-secret',
      },
    })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).not.toContain(
      'x-service-secret',
    )
  })

  it('credentials only on the password logins, which set the device cookie', async () => {
    for (const path of ['/v1/user/auth/login', '/api/v1/auth/login']) {
      const res = await preflight(app, path, FRONT_END)
      expect(res.status).toBe(204)
      expect(res.headers.get('access-control-allow-credentials'), path).toBe('true')
    }
    const { email } = await register(app)
    const loggedIn = await app.request('/v1/user/auth/login', {
      json: { email, password: PASSWORD },
      headers: { origin: FRONT_END },
    })
    expect(loggedIn.status).toBe(200)
    expect(loggedIn.headers.get('access-control-allow-origin')).toBe(FRONT_END)
    expect(loggedIn.headers.get('access-control-allow-credentials')).toBe('true')
    expect(loggedIn.headers.get('set-cookie')).toMatch(/^tessera_device=/)
    const { access_token } = (await loggedIn.json()) as { access_token: string }

    const me = await app.request('/v1/user/me', {
      token: access_token,
      headers: { origin: FRONT_END },
    })
    expect(me.status).toBe(200)
    expect(me.headers.get('access-control-allow-origin')).toBe(FRONT_END)
    expect(me.headers.get('access-control-allow-credentials')).toBeNull()
    expect(me.headers.get('access-control-expose-headers')).toBe(
      'Retry-After, WWW-Authenticate, X-Request-Id',
    )
    expect(vary(me)).toContain('Origin')
  })

  it('errors reach a listed origin with the headers a client needs', async () => {
    const res = await app.request('/v1/user/me', { headers: { origin: FRONT_END } })
    expect(res.headers.get('access-control-allow-origin')).toBe(FRONT_END)
    expect(res.headers.get('access-control-expose-headers')).toContain('WWW-Authenticate')
    await expectProblem(res, 401, 'unauthorized')
  })

  it('a preflight from any other origin is refused with 403 and no CORS headers', async () => {
    const spellings = [
      STRANGER,
      `${FRONT_END}/`,
      'https://APP.example.org',
      'https://app.example.org:443',
      'http://app.example.org',
      'https://app.example.org.evil.example',
      'null',
    ]
    for (const origin of spellings) {
      const res = await preflight(app, '/v1/user/auth/login', origin)
      expectNoCors(res)
      expect(vary(res), origin).toContain('Origin')
      await expectProblem(res, 403, 'cors_origin_not_allowed')
    }
    for (const origin of [FRONT_END, STRANGER]) {
      const res = await preflight(closed, '/v1/user/auth/login', origin)
      expectNoCors(res)
      await expectProblem(res, 403, 'cors_origin_not_allowed')
    }
  })

  it('no CORS headers for an unlisted origin: its page cannot read the answer', async () => {
    const { email } = await register(app)
    const res = await app.request('/v1/user/auth/login', {
      json: { email, password: PASSWORD },
      headers: { origin: STRANGER },
    })
    expect(res.status).toBe(200)
    expectNoCors(res)
    expect(vary(res)).toContain('Origin')
    // Without an Origin (curl, a server) nothing changes but Vary.
    const plain = await app.request('/health')
    expectNoCors(plain)
    expect(vary(plain)).toContain('Origin')
  })

  it('the public documents are readable from any origin, without credentials', async () => {
    for (const target of [app, closed]) {
      for (const path of ['/v1/keys', '/openapi.yaml']) {
        const res = await target.request(path, { headers: { origin: STRANGER } })
        expect(res.status).toBe(200)
        expect(res.headers.get('access-control-allow-origin'), path).toBe('*')
        expect(res.headers.get('access-control-allow-credentials'), path).toBeNull()
        // The same answer for every origin: nothing to vary on, and caches may share it.
        expect(vary(res), path).not.toContain('Origin')
        const pre = await preflight(target, path, STRANGER, 'GET')
        expect(pre.status).toBe(204)
        expect(pre.headers.get('access-control-allow-origin')).toBe('*')
        expect(pre.headers.get('access-control-allow-methods')).toBe('GET')
        expect(pre.headers.get('access-control-allow-credentials')).toBeNull()
      }
    }
  })

  it('an OPTIONS request that is no preflight is routed as any other (404)', async () => {
    const res = await app.request('/v1/user/me', {
      method: 'OPTIONS',
      headers: { origin: FRONT_END },
    })
    await expectProblem(res, 404, 'not_found')
  })

  it('a cross-origin request without preflight changes nothing', async () => {
    // What a page on any site can send without asking (a form post, or fetch with a "simple"
    // content type): no Authorization, no X-Service-Secret, no JSON content type. The JSON
    // routes refuse such bodies (415), the authenticated ones refuse the missing credential.
    const email = uniqueEmail('simple')
    const form = new FormData()
    form.set('email', email)
    form.set('password', PASSWORD)
    const bodies: Array<[string, string | URLSearchParams | FormData]> = [
      ['text/plain', JSON.stringify({ email, password: PASSWORD })],
      ['application/x-www-form-urlencoded', new URLSearchParams({ email, password: PASSWORD })],
      ['multipart/form-data', form],
    ]
    const routes: Array<[string, number, string]> = [
      ['/v1/user/auth/register', 415, 'unsupported_media_type'],
      ['/v1/user/auth/login', 415, 'unsupported_media_type'],
      ['/v1/user/auth/refresh', 415, 'unsupported_media_type'],
      ['/v1/user/auth/logout', 415, 'unsupported_media_type'],
      ['/v1/user/auth/oauth/exchange', 415, 'unsupported_media_type'],
      ['/api/v1/auth/register', 415, 'unsupported_media_type'],
      ['/api/v1/auth/login', 415, 'unsupported_media_type'],
      ['/v1/user/auth/logout-all', 401, 'unauthorized'],
      ['/v1/user/auth/reauthenticate', 401, 'unauthorized'],
      ['/v1/user/password', 401, 'unauthorized'],
      ['/v1/user/identities/cilogon/link-url', 401, 'unauthorized'],
      [`/v1/admin/users/${crypto.randomUUID()}/promote`, 401, 'unauthorized'],
      ['/v1/token/introspect', 401, 'unauthorized'],
    ]
    for (const [path, status, code] of routes) {
      for (const [type, body] of bodies) {
        // fetch sets the content type (with the multipart boundary) from the body itself.
        const headers: Record<string, string> =
          type === 'multipart/form-data'
            ? { origin: STRANGER }
            : { origin: STRANGER, 'content-type': type }
        const res = await app.request(path, { method: 'POST', headers, body })
        expectNoCors(res)
        const problem = (await res.clone().json()) as { code: string }
        expect([path, type, res.status, problem.code]).toEqual([path, type, status, code])
      }
    }
    // The registration in a text/plain body did not happen.
    await expectProblem(
      await app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
      401,
      'invalid_credentials',
    )
    // And the same account registered properly logs in: the refusal above was the content type.
    await register(app, email)
    expect((await login(app, email)).access_token).toMatch(/^v4\.public\./)
  })
})
