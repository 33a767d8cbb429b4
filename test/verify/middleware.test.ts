/**
 * The Hono middleware of `tessera/verify` in a small resource service, over real HTTP: a real
 * Tessera issues the tokens and publishes the keys, the resource service runs on its own port.
 */
import { type ServerType, serve } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type AuthEnv,
  auth,
  createVerifier,
  requireAccountType,
  requireAuth,
  requireVerified,
  type Verifier,
} from '../../src/verify/index.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { expectProblem, login, PASSWORD, registerAndLogin, uniqueEmail } from '../support/users.js'

const SERVICE_SECRET = 'middleware-test-service-secret-0123456789'

interface ResourceService {
  url: string
  get(
    path: string,
    token?: string,
    init?: RequestInit & { authorization?: string },
  ): Promise<Response>
  close(): Promise<void>
}

/** A resource service guarded by the middleware, listening on a loopback port. */
async function serveResource(verifier: Verifier): Promise<ResourceService> {
  const app = new Hono<AuthEnv>()
  app.use(
    auth({
      verifier,
      publicRoutes: ['/health', { method: 'GET', path: '/projects/*' }, '/optional/*'],
    }),
  )
  const whoami = (c: { get(key: 'auth'): AuthEnv['Variables']['auth'] }) => ({
    auth: c.get('auth') ?? null,
  })
  app.get('/health', (c) => c.json(whoami(c)))
  app.get('/projects/:id', (c) => c.json({ project: c.req.param('id'), ...whoami(c) }))
  app.post('/projects/:id', (c) => c.json({ updated: c.req.param('id') }))
  app.get('/projects', (c) => c.json({ projects: [] }))
  app.get('/me', (c) => c.json(whoami(c)))
  app.get('/optional/needs-login', requireAuth(), (c) => c.json(whoami(c)))
  app.get('/verified', requireVerified(), (c) => c.json(whoami(c)))
  app.get('/admin', requireAccountType('superuser'), (c) => c.json(whoami(c)))
  app.get('/machines', requireAccountType('service', 'superuser'), (c) => c.json(whoami(c)))

  const { server, port } = await new Promise<{ server: ServerType; port: number }>((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) =>
      resolve({ server, port: info.port }),
    )
  })
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    get(path, token, { authorization, ...init } = {}) {
      const headers = new Headers(init.headers)
      if (token !== undefined) headers.set('authorization', `Bearer ${token}`)
      if (authorization !== undefined) headers.set('authorization', authorization)
      return fetch(url + path, { ...init, headers })
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        ;(server as { closeIdleConnections?: () => void }).closeIdleConnections?.()
      }),
  }
}

async function claimsOf(res: Response): Promise<Record<string, unknown> | null> {
  expect(res.status, await res.clone().text()).toBe(200)
  return ((await res.json()) as { auth: Record<string, unknown> | null }).auth
}

describe('auth() middleware in a resource service', () => {
  let tessera: TestApp
  let resource: ResourceService
  let regular: { id: string; email: string; token: string }
  let service: { id: string; token: string }

  const verifierOptions = () => ({
    issuer: tessera.server.tessera.config.issuer,
    audience: tessera.server.tessera.config.audience,
    now: tessera.clock,
  })

  beforeAll(async () => {
    tessera = await makeTestApp({ env: { SERVICE_SECRET } })
    resource = await serveResource(
      createVerifier({ keysUrl: `${tessera.url}/v1/keys` }, verifierOptions()),
    )
    const registered = await registerAndLogin(tessera)
    regular = {
      id: registered.user.id,
      email: registered.email,
      token: registered.tokens.access_token,
    }
    const email = uniqueEmail('service')
    const res = await tessera.request('/v1/user/auth/register-service', {
      json: { email, password: PASSWORD },
      headers: { 'x-service-secret': SERVICE_SECRET },
    })
    expect(res.status, await res.clone().text()).toBe(201)
    const { id } = (await res.json()) as { id: string }
    service = { id, token: (await login(tessera, email)).access_token }
  })
  afterAll(async () => {
    await resource?.close()
    await tessera?.close()
  })

  describe('public routes', () => {
    it('answer without a token, with auth undefined', async () => {
      expect(await claimsOf(await resource.get('/health'))).toBeNull()
      expect(await claimsOf(await resource.get('/projects/42'))).toBeNull()
      // Deeper paths pass the middleware too (and meet the router's 404 here).
      expect((await resource.get('/projects/42/files')).status).toBe(404)
    })

    it('still read a valid token', async () => {
      const claims = await claimsOf(await resource.get('/health', regular.token))
      expect(claims?.sub).toBe(regular.id)
      expect((await claimsOf(await resource.get('/projects/7', regular.token)))?.email).toBe(
        regular.email,
      )
    })

    it('treat a token that does not verify as no token', async () => {
      expect(await claimsOf(await resource.get('/health', 'garbage'))).toBeNull()
      expect(
        await claimsOf(
          await resource.get('/health', undefined, { authorization: 'Basic Zm9vOmJhcg==' }),
        ),
      ).toBeNull()
    })

    it('match only the method and paths listed', async () => {
      // { method: 'GET', path: '/projects/*' } covers GET (and HEAD) below /projects/ only.
      expect((await resource.get('/projects/42', undefined, { method: 'HEAD' })).status).toBe(200)
      await expectProblem(
        await resource.get('/projects/42', undefined, { method: 'POST' }),
        401,
        'unauthorized',
      )
      await expectProblem(await resource.get('/projects'), 401, 'unauthorized')
      await expectProblem(await resource.get('/projects-archive/1'), 401, 'unauthorized')
      await expectProblem(await resource.get('/health/'), 401, 'unauthorized')
      await expectProblem(await resource.get('/HEALTH'), 401, 'unauthorized')
    })

    it('leave requireAuth() to answer 401, with invalid_token when a bad token came', async () => {
      const missing = await resource.get('/optional/needs-login')
      expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="tessera"')
      await expectProblem(missing, 401, 'unauthorized')
      const bad = await resource.get('/optional/needs-login', 'garbage')
      expect(bad.headers.get('www-authenticate')).toMatch(
        /^Bearer realm="tessera", error="invalid_token"/,
      )
      await expectProblem(bad, 401, 'unauthorized')
      expect(
        (await claimsOf(await resource.get('/optional/needs-login', regular.token)))?.sub,
      ).toBe(regular.id)
    })
  })

  describe('protected routes', () => {
    it('answer 401 without a token, with a challenge that has no error parameter', async () => {
      const res = await resource.get('/me')
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="tessera"')
      expect(res.headers.get('cache-control')).toBe('no-store')
      const body = await expectProblem(res, 401, 'unauthorized')
      expect(body.type).toBe('urn:tessera:problem:unauthorized')
    })

    it('answer 401 invalid_token for a garbage token', async () => {
      for (const token of [
        'garbage',
        'v4.public.AAAA',
        `${regular.token.slice(0, -2)}AA`,
        'v4.local.abc.def',
      ]) {
        const res = await resource.get('/me', token)
        expect(res.headers.get('www-authenticate'), token).toMatch(
          /^Bearer realm="tessera", error="invalid_token", error_description="[^"]+"$/,
        )
        await expectProblem(res, 401, 'unauthorized')
      }
    })

    it('answer 401 invalid_token for an Authorization that is not Bearer', async () => {
      for (const authorization of [
        'Basic Zm9vOmJhcg==',
        'Bearer',
        `Bearer ${regular.token} extra`,
        regular.token,
      ]) {
        const res = await resource.get('/me', undefined, { authorization })
        expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_token"/)
        await expectProblem(res, 401, 'unauthorized')
      }
    })

    it('answer 401 invalid_token for an expired token', async () => {
      // The same Tessera keys, a verifier whose clock is 20 minutes on (access TTL 15 min + 30 s
      // skew).
      const later = await serveResource(
        createVerifier(
          { keysUrl: `${tessera.url}/v1/keys` },
          { ...verifierOptions(), now: () => tessera.clock() + 20 * 60_000 },
        ),
      )
      try {
        const res = await later.get('/me', regular.token)
        expect(res.headers.get('www-authenticate')).toMatch(
          /error="invalid_token", error_description="[^"]*expired/,
        )
        const body = await expectProblem(res, 401, 'unauthorized')
        expect(body.detail).toMatch(/expired/)
      } finally {
        await later.close()
      }
    })

    it('expose the verified claims on success', async () => {
      const claims = await claimsOf(await resource.get('/me', regular.token))
      expect(claims).toMatchObject({
        iss: tessera.server.tessera.config.issuer,
        aud: tessera.server.tessera.config.audience,
        sub: regular.id,
        email: regular.email,
        acct: 'regular',
        verified: false,
      })
      expect(Object.keys(claims ?? {}).sort()).toEqual(
        [
          'acct',
          'amr',
          'aud',
          'email',
          'email_verified',
          'exp',
          'iat',
          'iss',
          'jti',
          'nbf',
          'scope',
          'sid',
          'sub',
          'verified',
        ].sort(),
      )
    })
  })

  describe('requireVerified and requireAccountType', () => {
    it('answer 403 not_verified for an unverified account', async () => {
      const res = await resource.get('/verified', regular.token)
      expect(res.headers.get('www-authenticate')).toMatch(
        /^Bearer realm="tessera", error="insufficient_scope"/,
      )
      await expectProblem(res, 403, 'not_verified')
    })

    it('let a verified account through', async () => {
      expect((await claimsOf(await resource.get('/verified', service.token)))?.sub).toBe(service.id)
    })

    it('answer 403 forbidden for another account type', async () => {
      const res = await resource.get('/admin', regular.token)
      expect(res.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/)
      await expectProblem(res, 403, 'forbidden')
      await expectProblem(await resource.get('/admin', service.token), 403, 'forbidden')
      await expectProblem(await resource.get('/machines', regular.token), 403, 'forbidden')
    })

    it('let a listed account type through', async () => {
      expect((await claimsOf(await resource.get('/machines', service.token)))?.acct).toBe('service')
    })

    it('answer 401 before 403 when there is no token', async () => {
      const app = new Hono<AuthEnv>()
      app.use(
        auth({ verifier: createVerifier({ keys: [] }, verifierOptions()), publicRoutes: ['/*'] }),
      )
      app.get('/verified', requireVerified(), (c) => c.text('ok'))
      app.get('/admin', requireAccountType('superuser'), (c) => c.text('ok'))
      for (const path of ['/verified', '/admin']) {
        const res = await app.request(path)
        expect(res.headers.get('www-authenticate')).toBe('Bearer realm="tessera"')
        await expectProblem(res, 401, 'unauthorized')
      }
    })
  })

  describe('when the keys cannot be fetched', () => {
    it('answers 503 on protected routes and lets public routes through anonymously', async () => {
      const down = await makeTestApp()
      const keysUrl = `${down.url}/v1/keys`
      const { tokens } = await registerAndLogin(down)
      await down.close()
      const orphan = await serveResource(createVerifier({ keysUrl }, verifierOptions()))
      try {
        const res = await orphan.get('/me', tokens.access_token)
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
        expect(res.headers.get('www-authenticate')).toBeNull()
        await expectProblem(res, 503, 'service_unavailable')
        expect(await claimsOf(await orphan.get('/health', tokens.access_token))).toBeNull()
        await expectProblem(
          await orphan.get('/optional/needs-login', tokens.access_token),
          503,
          'service_unavailable',
        )
        // Without a token nothing needs the keys: the answer is the usual 401.
        await expectProblem(await orphan.get('/me'), 401, 'unauthorized')
      } finally {
        await orphan.close()
      }
    })
  })
})

describe('middleware options', () => {
  it('uses the configured realm in every challenge', async () => {
    const verifier = createVerifier(
      { keys: [] },
      { issuer: 'https://id.example.org', audience: 'tessera' },
    )
    const app = new Hono<AuthEnv>()
    app.use(auth({ verifier, realm: 'archive "main"' }))
    app.get('/x', requireVerified(), (c) => c.text('ok'))
    expect((await app.request('/x')).headers.get('www-authenticate')).toBe(
      'Bearer realm="archive main"',
    )
    const bad = await app.request('/x', { headers: { authorization: 'Bearer garbage' } })
    expect(bad.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="archive main", error="invalid_token"/,
    )
  })

  it('refuses a bad configuration when the middleware is made', () => {
    const verifier = createVerifier(
      { keys: [] },
      { issuer: 'https://id.example.org', audience: 'tessera' },
    )
    expect(() => auth({ verifier: undefined as never })).toThrow(TypeError)
    expect(() => auth({ verifier, publicRoutes: ['health'] })).toThrow(TypeError)
    expect(() => requireAccountType(...([] as never as ['regular']))).toThrow(TypeError)
    expect(() => createVerifier({ keys: [] }, { issuer: '', audience: 'tessera' })).toThrow(
      TypeError,
    )
  })
})
