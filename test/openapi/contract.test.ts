/**
 * openapi.yaml is the contract (openapi.yaml): a valid OpenAPI 3.1 document, describing exactly the
 * routes the app registers, and matching what the real server (real HTTP, real SQLite) answers —
 * every documented operation is driven through its success and its documented errors, and every
 * response is checked against the document (test/support/openapi.ts).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerAccount, setDisabled } from '../../src/accounts/accounts.js'
import { createClient } from '../../src/clients/clients.js'
import { createApp, MAX_BODY_BYTES } from '../../src/http/app.js'
import { publishNextSigningKey, revokeSigningKey } from '../../src/keys/rotation.js'
import { outboxDirectory } from '../../src/mail/transport.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { approveAs, denyAs } from '../support/device.js'
import { dialects } from '../support/dialects.js'
import { startFederation } from '../support/federation.js'
import { outboxResetCode } from '../support/mail.js'
import { enrolTotp, totpCode } from '../support/mfa.js'
import { Browser, CLIENT_REDIRECT_URI, clientPkce, TESSERA_TEST_ISSUER } from '../support/oidc.js'
import {
  checkAgainstOpenApi,
  checkAgainstOperation,
  checkRequestBody,
  documentedOperations,
  HTTP_METHODS,
  loadOpenApi,
  OPENAPI_FILE,
  openApiCoverage,
  schemaValidator,
  toOpenApiPath,
} from '../support/openapi.js'
import { outboxToken } from '../support/outbox.js'
import { signedInSuperuser } from '../support/superuser.js'
import { PASSWORD, type TokenPairBody, uniqueEmail } from '../support/users.js'
import { SoftwareAuthenticator } from '../support/webauthn.js'
import { pagesContract } from './pages-contract.js'

const SECRET = 'contract-test-service-secret-0123456789'
const METRICS_TOKEN = 'contract-test-metrics-token-0123456789'
const NO_CLIENT = { ip: null, userAgent: null }
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000'

/** Statuses no test can provoke from outside (an unexpected failure); documented all the same. */
const NOT_PROVOKED = new Set(['500'])
/**
 * The database-unavailable 503s are provoked on PostgreSQL (a proxy in front of it is cut);
 * SQLite has no outage a test can cause quickly.
 */
const POSTGRES = dialects().includes('postgres')
if (!POSTGRES)
  console.warn(
    'contract.test.ts: no PostgreSQL, so the 503 database-unavailable answers are not exercised',
  )

/**
 * A TCP proxy to a PostgreSQL server that can be cut: the database "goes away" for whoever uses it.
 */
async function cuttableProxy(target: {
  hostname: string
  port: number
}): Promise<{ port: number; cut(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.hostname)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => sockets.delete(socket))
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    cut: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      }),
  }
}

/** Every page route that reads the database (all but the stylesheet), for the outage test. */
const PAGE_ROUTES: [string, string, string?][] = [
  ['GET', '/login'],
  ['POST', '/login'],
  ['POST', '/login/mfa'],
  ['POST', '/login/mfa/passkey/options'],
  ['POST', '/login/federated'],
  ['GET', '/login/complete?state=x&code=y', '/login/complete'],
  ['GET', '/register'],
  ['POST', '/register'],
  ['POST', '/logout'],
  ['GET', '/account'],
  ['POST', '/account/profile'],
  ['POST', '/account/password'],
  ['POST', '/account/sessions/revoke'],
  ['POST', '/account/sign-out-everywhere'],
  ['POST', '/account/link'],
  ['POST', '/account/unlink'],
  ['POST', '/account/reauthenticate'],
  ['POST', '/account/email'],
  ['POST', '/login/passkey/options'],
  ['POST', '/login/passkey'],
  ['POST', '/account/passkeys/options'],
  ['POST', '/account/passkeys'],
  ['POST', '/account/passkeys/remove'],
  ['POST', '/account/mfa/totp'],
  ['POST', '/account/mfa/totp/confirm'],
  ['POST', '/account/mfa/recovery-codes'],
  ['POST', '/account/mfa/totp/remove'],
  ['GET', '/verify-email'],
  ['POST', '/verify-email'],
  ['POST', '/verify-email/send'],
  ['GET', '/email-change'],
  ['POST', '/email-change'],
  ['GET', '/device'],
  ['POST', '/device'],
  ['POST', '/device/approve'],
  ['POST', '/device/deny'],
  ['POST', '/device/reauthenticate'],
  ['GET', '/forgot-password'],
  ['POST', '/forgot-password'],
  ['GET', '/reset-password'],
  ['POST', '/reset-password'],
]

/** A JSON body just over the limit. */
const OVERSIZED = JSON.stringify({ padding: 'x'.repeat(MAX_BODY_BYTES) })

type Init = RequestInit & { json?: unknown; token?: string }

/** Sends a request and checks the response against `method path` of the document. */
async function call(app: TestApp, method: string, path: string, init: Init = {}, template = path) {
  const res = await app.request(path, { ...init, method })
  const checked = await checkAgainstOpenApi(method, template, res)
  return { res, ...checked }
}

/** A request the server should accept: its JSON body must also satisfy the documented schema. */
async function send(
  app: TestApp,
  method: string,
  path: string,
  init: Init & { json: unknown },
  template = path,
) {
  await checkRequestBody(method, template, 'application/json', init.json)
  return call(app, method, path, init, template)
}

const problemCode = (body: unknown) => (body as { code: string }).code

describe('openapi.yaml as a document', () => {
  it('is a valid OpenAPI 3.1 document (@seriousme/openapi-schema-validator)', async () => {
    const { document, valid, errors } = await loadOpenApi()
    expect(errors, JSON.stringify(errors, null, 2)).toBeUndefined()
    expect(valid).toBe(true)
    expect(document.openapi).toMatch(/^3\.1\./)
  })

  it('every component schema compiles as JSON Schema 2020-12 in ajv strict mode', async () => {
    const { document } = await loadOpenApi()
    const names = Object.keys(document.components.schemas ?? {})
    expect(names.length).toBeGreaterThan(0)
    for (const name of names) await schemaValidator(['components', 'schemas', name])
  })

  it('documents exactly the routes registered in the Hono app', async () => {
    const app = createApp({} as never)
    // Routes that answer more than one documented path: folded so that every route fits Hono's
    // RegExpRouter (docs/performance.md, "Routing"; test/http/routing.test.ts answers each path).
    const folded: Record<string, string[]> = {
      'GET /docs/assets/*': [
        'GET /docs/assets/{version}/{file}',
        'GET /docs/assets/{version}/chunks/{file}',
      ],
      'GET /link/{ticket}': ['GET /link/{ticket}', 'GET /link/done'],
    }
    const registered = new Set(
      app.routes
        .filter((r) => r.method !== 'ALL')
        .map((r) => `${r.method} ${toOpenApiPath(r.path)}`)
        .flatMap((route) => folded[route] ?? [route])
        .filter((route) => !route.includes('*')),
    )
    const documented = new Set((await documentedOperations()).map((o) => `${o.method} ${o.path}`))
    expect([...documented].sort()).toEqual([...registered].sort())
  })

  it('every response of every operation declares Cache-Control', async () => {
    const { document } = await loadOpenApi()
    const missing: string[] = []
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of HTTP_METHODS) {
        const responses = (
          item[method] as { responses?: Record<string, Record<string, unknown>> } | undefined
        )?.responses
        for (const [status, response] of Object.entries(responses ?? {})) {
          const resolved =
            typeof response.$ref === 'string'
              ? (document.components.responses?.[response.$ref.split('/').at(-1)!] as Record<
                  string,
                  unknown
                >)
              : response
          if (!(resolved.headers as Record<string, unknown> | undefined)?.['Cache-Control']) {
            missing.push(`${method.toUpperCase()} ${path} ${status}`)
          }
        }
      }
    }
    expect(missing).toEqual([])
  })
})

describe('CORS: the rule of openapi.yaml ("Browsers on other origins") on every path', () => {
  const FRONT_END = 'https://app.example.org'
  const STRANGER = 'https://evil.example'
  const PREFLIGHT = ['components', 'pathItems', 'CorsPreflight', 'options']
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp({ env: { CORS_ORIGINS: FRONT_END } })
  })
  afterAll(() => app?.close())

  it('preflights and responses of every documented path follow its x-cors class', async () => {
    const { document } = await loadOpenApi()
    const answered = new Set<string>()
    for (const [template, item] of Object.entries(document.paths)) {
      const operations = HTTP_METHODS.flatMap((m) =>
        item[m] === undefined ? [] : [[m, item[m] as { 'x-cors'?: string }] as const],
      )
      const classes = new Set(operations.map(([, op]) => op['x-cors'] ?? 'allow-list'))
      expect([...classes], `${template}: one x-cors class per path`).toHaveLength(1)
      const [cors] = classes
      // Any value will do: the rule is about the path, not about what it names.
      const path = template.replace(/\{[^}]+\}/g, 'sample')
      const where = `${template} (${cors})`

      for (const origin of [FRONT_END, STRANGER]) {
        const res = await app.request(path, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST' },
        })
        const checked = await checkAgainstOperation(PREFLIGHT, 'OPTIONS (CORS preflight)', res)
        answered.add(String(checked.status))
        const allowed = cors === 'public' || origin === FRONT_END
        expect([where, origin, res.status], 'preflight status').toEqual([
          where,
          origin,
          allowed ? 204 : 403,
        ])
        expect(res.headers.get('access-control-allow-origin'), where).toBe(
          !allowed ? null : cors === 'public' ? '*' : origin,
        )
        expect(res.headers.get('access-control-allow-credentials'), where).toBe(
          allowed && cors === 'credentials' ? 'true' : null,
        )
        if (allowed && cors !== 'public') {
          expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PATCH, DELETE')
          expect(res.headers.get('access-control-allow-headers')).toBe(
            'Authorization, Content-Type',
          )
        }
      }

      // The answers themselves, whatever their status (no body, no token: mostly errors).
      for (const [method] of operations) {
        for (const origin of [FRONT_END, STRANGER]) {
          const res = await app.request(path, {
            method: method.toUpperCase(),
            headers: { origin },
            redirect: 'manual',
          })
          // The headers are the point; the revocation stream's body never ends.
          await res.body?.cancel()
          const label = `${method.toUpperCase()} ${where} from ${origin}`
          const allowed = cors === 'public' || origin === FRONT_END
          expect(res.headers.get('access-control-allow-origin'), label).toBe(
            !allowed ? null : cors === 'public' ? '*' : origin,
          )
          expect(res.headers.get('access-control-expose-headers'), label).toBe(
            allowed ? 'Retry-After, WWW-Authenticate, X-Request-Id' : null,
          )
          expect(res.headers.get('access-control-allow-credentials'), label).toBe(
            allowed && cors === 'credentials' ? 'true' : null,
          )
          expect((res.headers.get('vary') ?? '').includes('Origin'), label).toBe(cors !== 'public')
        }
      }
    }
    // Both documented answers of the rule were seen.
    expect([...answered].sort()).toEqual(['204', '403'])
  })
})

describe('live responses match openapi.yaml', () => {
  /** Service secret set, rate limits off. */
  let app: TestApp
  /**
   * No service secret; one registration, one login attempt and one request to each federated
   * route per window; one refresh per session and window; METRICS_TOKEN set; no federated provider.
   */
  let strict: TestApp

  beforeAll(async () => {
    ;[app, strict] = await Promise.all([
      makeTestApp({
        env: {
          SERVICE_SECRET: SECRET,
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
        },
      }),
      makeTestApp({
        env: {
          RATE_LIMIT_REGISTER_PER_IP: '1',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '1',
          RATE_LIMIT_OAUTH_PER_IP: '1',
          RATE_LIMIT_REFRESH_PER_SESSION: '1',
          RATE_LIMIT_CLIENT_AUTH_PER_CLIENT: '1',
          RATE_LIMIT_PASSWORD_RESET_PER_IP: '1',
          RATE_LIMIT_MFA_PER_ACCOUNT: '1',
          REVOCATION_STREAM_MAX_CLIENTS: '0',
          METRICS_TOKEN,
        },
      }),
    ])
  })
  afterAll(() => Promise.all([app?.close(), strict?.close()]))

  async function newUser(target = app) {
    const email = uniqueEmail('contract')
    const registered = await send(target, 'POST', '/v1/user/auth/register', {
      json: { email, password: PASSWORD },
    })
    expect(registered.status).toBe(201)
    const loggedIn = await send(target, 'POST', '/v1/user/auth/login', {
      json: { email, password: PASSWORD },
    })
    expect(loggedIn.status).toBe(200)
    return {
      email,
      id: (registered.body as { id: string }).id,
      tokens: loggedIn.body as TokenPairBody,
    }
  }

  /** The 413 and 415 every JSON-body operation documents. */
  async function bodyErrors(method: string, path: string, init: Init = {}, template = path) {
    const tooLarge = await call(
      app,
      method,
      path,
      {
        ...init,
        headers: {
          ...(init.headers as Record<string, string>),
          'content-type': 'application/json',
        },
        body: OVERSIZED,
      },
      template,
    )
    expect([tooLarge.status, problemCode(tooLarge.body)]).toEqual([413, 'payload_too_large'])
    const wrongType = await call(
      app,
      method,
      path,
      {
        ...init,
        headers: { ...(init.headers as Record<string, string>), 'content-type': 'text/plain' },
        body: '{}',
      },
      template,
    )
    expect([wrongType.status, problemCode(wrongType.body)]).toEqual([415, 'unsupported_media_type'])
  }

  describe('operations', () => {
    it('GET /health, GET /ready, GET /v1/keys', async () => {
      expect((await call(app, 'GET', '/health')).body).toEqual({ status: 'ok' })
      expect((await call(app, 'GET', '/ready')).body).toEqual({ status: 'ready' })
      const keys = await call(app, 'GET', '/v1/keys')
      expect(keys.status).toBe(200)
      expect((keys.body as { keys: unknown[] }).keys.length).toBeGreaterThan(0)
      // During a rotation: the next key beside the active one (withdrawn again afterwards).
      app.clock.advance(1000)
      const next = await publishNextSigningKey(app.server.tessera)
      const rotating = await call(app, 'GET', '/v1/keys')
      const statuses = (rotating.body as { keys: Array<{ status: string }> }).keys.map(
        (k) => k.status,
      )
      expect(statuses.slice(0, 2)).toEqual(['next', 'active'])
      await revokeSigningKey(app.server.tessera, next.kid)
    })

    it('GET /v1/revocations and GET /v1/revocations/stream', async () => {
      const { tokens } = await newUser()
      await call(app, 'POST', '/v1/user/auth/logout', {
        json: { refresh_token: tokens.refresh_token },
      })
      const page = await call(app, 'GET', '/v1/revocations?after=0', {}, '/v1/revocations')
      expect(page.status).toBe(200)
      const validateDocument = await schemaValidator([
        'components',
        'schemas',
        'RevocationDocument',
      ])
      const payloadOf = (document: string) =>
        JSON.parse(
          Buffer.from(document.split('.')[2]!, 'base64url').subarray(0, -64).toString('utf8'),
        ) as { entries: unknown[] }
      const payload = payloadOf((page.body as { document: string }).document)
      expect(validateDocument(payload), JSON.stringify(validateDocument.errors)).toBe(true)
      expect(payload.entries.length).toBeGreaterThan(0)
      const badCursor = await call(app, 'GET', '/v1/revocations?after=x', {}, '/v1/revocations')
      expect([badCursor.status, problemCode(badCursor.body)]).toEqual([400, 'validation_failed'])

      // The stream never ends by itself: its headers and first event are checked.
      const path = '/v1/revocations/stream'
      const controller = new AbortController()
      const res = await app.request(path, { signal: controller.signal })
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
      let text = ''
      while (!/\ndata: [^\n]*\n/.test(text)) text += (await reader.read()).value ?? ''
      controller.abort()
      const first = new Response(text, { status: res.status, headers: res.headers })
      expect((await checkAgainstOpenApi('GET', path, first)).status).toBe(200)
      const data = /\ndata: ([^\n]*)\n/.exec(text)![1]!
      expect(validateDocument(payloadOf(data)), JSON.stringify(validateDocument.errors)).toBe(true)
      const badStart = await call(app, 'GET', path, { headers: { 'last-event-id': 'x' } })
      expect([badStart.status, problemCode(badStart.body)]).toEqual([400, 'validation_failed'])
      // The strict app allows no stream at all.
      const full = await call(strict, 'GET', path)
      expect([full.status, problemCode(full.body)]).toEqual([503, 'service_unavailable'])
    })

    it('GET /metrics', async () => {
      // Prometheus text exposition, behind METRICS_TOKEN when it is set.
      const open = await call(app, 'GET', '/metrics')
      expect(open.status).toBe(200)
      expect(open.res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
      const text = open.body as string
      expect(text).toContain('# TYPE tessera_http_request_duration_seconds histogram')
      expect(text).toContain('# TYPE tessera_logins_total counter')
      expect(text).toMatch(/^tessera_sessions_live \d+$/m)

      const refusedHeaders: Array<Record<string, string>> = [
        {},
        { authorization: 'Bearer wrong-token-0123456789' },
        { authorization: `Basic ${METRICS_TOKEN}` },
      ]
      for (const headers of refusedHeaders) {
        const refused = await call(strict, 'GET', '/metrics', { headers })
        expect([refused.status, problemCode(refused.body)]).toEqual([401, 'unauthorized'])
      }
      const allowed = await call(strict, 'GET', '/metrics', { token: METRICS_TOKEN })
      expect(allowed.status).toBe(200)
      expect(allowed.body).toContain('# TYPE tessera_refreshes_total counter')
    })

    it('GET /openapi.yaml serves this document, naming this server', async () => {
      const yaml = await call(app, 'GET', '/openapi.yaml')
      expect(yaml.res.headers.get('content-type')).toBe('application/yaml')
      expect(yaml.res.headers.get('cache-control')).toBe('public, max-age=300')
      // The repository's document, with its servers block naming TESSERA_ISSUER (the default).
      const file = readFileSync(OPENAPI_FILE, 'utf8')
      expect(file).toContain('servers:\n  - url: http://localhost:8000\n')
      expect(yaml.body).toBe(
        file.replace(
          /^servers:\n(?: {2}.*\n)+/m,
          'servers:\n  - url: "http://localhost:8000"\n' +
            '    description: This Tessera (TESSERA_ISSUER)\n',
        ),
      )
      const elsewhere = await makeTestApp({ env: { TESSERA_ISSUER: 'https://id.example.org/' } })
      try {
        const served = await call(elsewhere, 'GET', '/openapi.yaml')
        expect(served.body).toContain('servers:\n  - url: "https://id.example.org"\n')
        expect(served.body).not.toContain('localhost:8000')
      } finally {
        await elsewhere.close()
      }
    })

    it('GET /docs and the renderer files it loads, all from this server', async () => {
      // The page names no other origin, and its CSP allows scripts of this origin plus, by
      // hash, its one inline script.
      const docs = await call(app, 'GET', '/docs')
      const html = docs.body as string
      expect(html).not.toMatch(/\/\/[a-z0-9.-]+\.[a-z]{2,}|https?:/i)
      expect(html).toContain('./openapi.yaml')
      const csp = docs.res.headers.get('content-security-policy')!
      expect(html).not.toMatch(/<script[^>]*\bsrc=/)
      const inline = [...html.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]!)
      expect(inline).toHaveLength(1)
      const hash = `'sha256-${createHash('sha256').update(inline[0]!).digest('base64')}'`
      expect(csp).toBe(
        [
          "default-src 'none'",
          `script-src 'self' ${hash}`,
          "style-src 'self' 'unsafe-inline'",
          "connect-src 'self'",
          "img-src 'self' data:",
          "base-uri 'none'",
          "form-action 'none'",
          "frame-ancestors 'none'",
        ].join('; '),
      )
      expect(docs.res.headers.get('x-frame-options')).toBe('DENY')
      // The strict policy of every other response is untouched.
      expect((await app.request('/health')).headers.get('content-security-policy')).toBe(
        "default-src 'none'; frame-ancestors 'none'",
      )

      // The entry module, at the version the page names, then one of the chunks it imports.
      const entry = /import\('\.(\/docs\/assets\/([^/]+)\/standalone\.esm\.js)'\)/.exec(inline[0]!)
      expect(entry).not.toBeNull()
      const [, entryPath, version] = entry!
      const installed = JSON.parse(
        readFileSync(
          new URL('../../node_modules/@scalar/api-reference/package.json', import.meta.url),
          'utf8',
        ),
      ) as { version: string }
      expect(version).toBe(installed.version)
      const moduleTemplate = '/docs/assets/{version}/{file}'
      const chunkTemplate = '/docs/assets/{version}/chunks/{file}'
      const identity = { headers: { 'accept-encoding': 'identity' } }
      const module = await call(app, 'GET', entryPath!, identity, moduleTemplate)
      expect(module.status).toBe(200)
      expect(module.res.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
      expect(module.res.headers.get('content-encoding')).toBeNull()
      const chunk = /from"\.\/(chunks\/[A-Za-z0-9._-]+\.js)"/.exec(module.body as string)?.[1]
      expect(chunk).toBeDefined()
      const chunkPath = `/docs/assets/${version}/${chunk}`
      // fetch asks for gzip and decodes it: the body is the module all the same.
      const gzipped = await call(app, 'GET', chunkPath, {}, chunkTemplate)
      expect(gzipped.res.headers.get('content-encoding')).toBe('gzip')
      expect(gzipped.body).toMatch(/^\/\*!|^import|^var|^const|^let|^function|^export/)
      for (const [path, template] of [
        [`/docs/assets/0.0.0/standalone.esm.js`, moduleTemplate],
        [`/docs/assets/${version}/standalone.js`, moduleTemplate],
        [`/docs/assets/${version}/chunks/nope.js`, chunkTemplate],
      ] as const) {
        const missing = await call(app, 'GET', path, {}, template)
        expect([path, missing.status, problemCode(missing.body)]).toEqual([path, 404, 'not_found'])
      }
    })

    it('POST /v1/user/auth/register', async () => {
      const email = uniqueEmail('contract')
      const created = await send(app, 'POST', '/v1/user/auth/register', {
        json: { email, password: PASSWORD, display_name: 'Ada' },
      })
      expect(created.status).toBe(201)
      const path = '/v1/user/auth/register'
      expect(
        problemCode(
          (await call(app, 'POST', path, { json: { email: 'not-an-email', password: PASSWORD } }))
            .body,
        ),
      ).toBe('validation_failed')
      expect(
        problemCode(
          (await call(app, 'POST', path, { json: { email: uniqueEmail(), password: 'password' } }))
            .body,
        ),
      ).toBe('weak_password')
      expect(
        problemCode(
          (
            await call(app, 'POST', path, {
              json: { email: email.toUpperCase(), password: PASSWORD },
            })
          ).body,
        ),
      ).toBe('email_taken')
      await bodyErrors('POST', path)
      await send(strict, 'POST', path, { json: { email: uniqueEmail(), password: PASSWORD } })
      const limited = await call(strict, 'POST', path, {
        json: { email: uniqueEmail(), password: PASSWORD },
      })
      expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
    })

    it('POST /v1/user/auth/register-service', async () => {
      const path = '/v1/user/auth/register-service'
      const email = uniqueEmail('svc')
      const secret = { 'x-service-secret': SECRET }
      const created = await send(app, 'POST', path, {
        json: { email, password: PASSWORD },
        headers: secret,
      })
      expect(created.body).toMatchObject({ account_type: 'service', verified: true })
      expect(
        (
          await call(app, 'POST', path, {
            json: { email, password: PASSWORD },
            headers: { 'x-service-secret': 'wrong-secret-0123456789' },
          })
        ).status,
      ).toBe(403)
      expect((await call(app, 'POST', path, { json: { email, password: PASSWORD } })).status).toBe(
        403,
      )
      expect(
        problemCode(
          (
            await call(app, 'POST', path, {
              json: { email: 1, password: PASSWORD },
              headers: secret,
            })
          ).body,
        ),
      ).toBe('validation_failed')
      expect(
        problemCode(
          (
            await call(app, 'POST', path, {
              json: { email: uniqueEmail(), password: '12345678' },
              headers: secret,
            })
          ).body,
        ),
      ).toBe('weak_password')
      expect(
        (await call(app, 'POST', path, { json: { email, password: PASSWORD }, headers: secret }))
          .status,
      ).toBe(409)
      await bodyErrors('POST', path, { headers: secret })
      // Without a configured secret the route answers as if it did not exist.
      expect(
        problemCode(
          (
            await call(strict, 'POST', path, {
              json: { email, password: PASSWORD },
              headers: secret,
            })
          ).body,
        ),
      ).toBe('not_found')
    })

    for (const path of ['/v1/user/auth/login', '/api/v1/auth/login']) {
      it(`POST ${path}`, async () => {
        const { email, id } = await newUser()
        const ok = await send(app, 'POST', path, { json: { email, password: PASSWORD } })
        expect(ok.status).toBe(200)
        expect(problemCode((await call(app, 'POST', path, { json: { email } })).body)).toBe(
          'validation_failed',
        )
        expect(
          problemCode(
            (await call(app, 'POST', path, { json: { email, password: 'wrong password!' } })).body,
          ),
        ).toBe('invalid_credentials')
        expect(
          problemCode(
            (await call(app, 'POST', path, { json: { email: uniqueEmail(), password: PASSWORD } }))
              .body,
          ),
        ).toBe('invalid_credentials')
        await bodyErrors('POST', path)
        await setDisabled(app.server.tessera, id, true)
        const disabled = await call(app, 'POST', path, { json: { email, password: PASSWORD } })
        expect([disabled.status, problemCode(disabled.body)]).toEqual([403, 'account_disabled'])
        const target = uniqueEmail('limited')
        await call(strict, 'POST', path, { json: { email: target, password: 'guess number one' } })
        const limited = await call(strict, 'POST', path, {
          json: { email: target, password: 'guess number two' },
        })
        expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
      })
    }

    it('POST /v1/user/auth/refresh', async () => {
      const path = '/v1/user/auth/refresh'
      const { tokens } = await newUser()
      const rotated = await send(app, 'POST', path, {
        json: { refresh_token: tokens.refresh_token },
      })
      expect(rotated.status).toBe(200)
      // Inside the reuse interval the spent token answers the same pair again (TokenPair).
      const replayed = await send(app, 'POST', path, {
        json: { refresh_token: tokens.refresh_token },
      })
      expect(replayed.status).toBe(200)
      app.clock.advance(10_000)
      const reused = await call(app, 'POST', path, {
        json: { refresh_token: tokens.refresh_token },
      })
      expect([reused.status, problemCode(reused.body)]).toEqual([401, 'refresh_token_reused'])
      const unknown = await call(app, 'POST', path, {
        json: { refresh_token: 'tessera_rt_unknown' },
      })
      expect([unknown.status, problemCode(unknown.body)]).toEqual([401, 'invalid_refresh_token'])
      expect(
        problemCode((await call(app, 'POST', path, { json: { refresh_token: '' } })).body),
      ).toBe('validation_failed')
      await bodyErrors('POST', path)
      // One refresh per session and window on `strict`.
      const email = uniqueEmail('refresh-limit')
      await registerAccount(strict.server.tessera, { email, password: PASSWORD }, NO_CLIENT)
      const first = (
        await send(strict, 'POST', '/v1/user/auth/login', { json: { email, password: PASSWORD } })
      ).body as TokenPairBody
      const second = (
        await send(strict, 'POST', path, { json: { refresh_token: first.refresh_token } })
      ).body as TokenPairBody
      const limited = await call(strict, 'POST', path, {
        json: { refresh_token: second.refresh_token },
      })
      expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
    })

    it('POST /v1/user/auth/logout', async () => {
      const path = '/v1/user/auth/logout'
      const { tokens } = await newUser()
      expect(
        (await send(app, 'POST', path, { json: { refresh_token: tokens.refresh_token } })).status,
      ).toBe(204)
      expect(
        (await send(app, 'POST', path, { json: { refresh_token: 'tessera_rt_unknown' } })).status,
      ).toBe(204)
      expect(problemCode((await call(app, 'POST', path, { json: {} })).body)).toBe(
        'validation_failed',
      )
      await bodyErrors('POST', path)
    })

    it('POST /v1/user/auth/logout-all', async () => {
      const path = '/v1/user/auth/logout-all'
      const { tokens } = await newUser()
      expect((await call(app, 'POST', path, { token: tokens.access_token })).status).toBe(204)
      expect((await call(app, 'POST', path, { token: tokens.access_token })).status).toBe(401)
      expect((await call(app, 'POST', path)).status).toBe(401)
      const tooLarge = await call(app, 'POST', path, {
        body: OVERSIZED,
        headers: { 'content-type': 'application/json' },
      })
      expect(tooLarge.status).toBe(413)
    })

    it('GET and PATCH /v1/user/me', async () => {
      const path = '/v1/user/me'
      const { tokens } = await newUser()
      const token = tokens.access_token
      expect((await call(app, 'GET', path, { token })).body).toMatchObject({ identities: [] })
      expect((await call(app, 'GET', path)).status).toBe(401)
      expect((await call(app, 'GET', path, { token: 'v4.public.garbage' })).status).toBe(401)
      expect(
        (await send(app, 'PATCH', path, { token, json: { display_name: 'Grace' } })).body,
      ).toMatchObject({ display_name: 'Grace' })
      expect(
        (await send(app, 'PATCH', path, { token, json: { display_name: null } })).body,
      ).toMatchObject({ display_name: null })
      expect((await send(app, 'PATCH', path, { token, json: {} })).status).toBe(200)
      expect(
        problemCode(
          (await call(app, 'PATCH', path, { token, json: { display_name: 'x'.repeat(101) } })).body,
        ),
      ).toBe('validation_failed')
      expect((await call(app, 'PATCH', path, { json: { display_name: 'X' } })).status).toBe(401)
      await bodyErrors('PATCH', path, { token })
    })

    it('POST /v1/user/password', async () => {
      const path = '/v1/user/password'
      const { tokens } = await newUser()
      const token = tokens.access_token
      expect(
        problemCode(
          (await call(app, 'POST', path, { token, json: { current_password: PASSWORD } })).body,
        ),
      ).toBe('validation_failed')
      expect(
        problemCode(
          (
            await call(app, 'POST', path, {
              token,
              json: { current_password: PASSWORD, new_password: 'password' },
            })
          ).body,
        ),
      ).toBe('weak_password')
      expect(
        problemCode(
          (
            await call(app, 'POST', path, {
              token,
              json: {
                current_password: 'not the password',
                new_password: 'another-fine-passphrase-7',
              },
            })
          ).body,
        ),
      ).toBe('invalid_credentials')
      expect(
        problemCode(
          (
            await call(app, 'POST', path, {
              json: { current_password: PASSWORD, new_password: 'another-fine-passphrase-7' },
            })
          ).body,
        ),
      ).toBe('unauthorized')
      await bodyErrors('POST', path, { token })
      expect(
        (
          await send(app, 'POST', path, {
            token,
            json: { current_password: PASSWORD, new_password: 'another-fine-passphrase-7' },
          })
        ).status,
      ).toBe(204)
      // Guesses count against the per-account login limit (one attempt per window on `strict`,
      // whose one registration per window may be used up: the account is created directly).
      const email = uniqueEmail('limited')
      await registerAccount(strict.server.tessera, { email, password: PASSWORD }, NO_CLIENT)
      const strictToken = (
        (await send(strict, 'POST', '/v1/user/auth/login', { json: { email, password: PASSWORD } }))
          .body as TokenPairBody
      ).access_token
      const guess = {
        current_password: 'not the password',
        new_password: 'another-fine-passphrase-7',
      }
      expect((await call(strict, 'POST', path, { token: strictToken, json: guess })).status).toBe(
        401,
      )
      const limited = await call(strict, 'POST', path, { token: strictToken, json: guess })
      expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
    })

    it('POST /v1/user/email/... (verify/send, verify, change, confirm, cancel)', async () => {
      const { email, tokens } = await newUser()
      const token = tokens.access_token
      const code = (res: { body: unknown }) => problemCode(res.body)
      // Verification: the registration's mail, a new one on request, the code.
      await outboxToken(app, email, 'tessera_ev_')
      const sendPath = '/v1/user/email/verify/send'
      expect((await send(app, 'POST', sendPath, { json: { email } })).status).toBe(202)
      expect(code(await call(app, 'POST', sendPath, { json: {} }))).toBe('validation_failed')
      await bodyErrors('POST', sendPath)
      const verifyPath = '/v1/user/email/verify'
      const verify = await outboxToken(app, email, 'tessera_ev_')
      expect((await send(app, 'POST', verifyPath, { json: { token: verify } })).status).toBe(204)
      expect(code(await call(app, 'POST', verifyPath, { json: { token: verify } }))).toBe(
        'invalid_email_token',
      )
      expect(code(await call(app, 'POST', verifyPath, { json: {} }))).toBe('validation_failed')
      await bodyErrors('POST', verifyPath)
      // One registration (and so one verification mail) per address and window on `strict`.
      const limitedEmail = uniqueEmail('send-limited')
      expect((await call(strict, 'POST', sendPath, { json: { email: limitedEmail } })).status).toBe(
        202,
      )
      const limited = await call(strict, 'POST', sendPath, { json: { email: limitedEmail } })
      expect([limited.status, code(limited)]).toEqual([429, 'rate_limited'])

      // Change: asked with the password, confirmed from the new address.
      const changePath = '/v1/user/email/change'
      const next = uniqueEmail('changed')
      const change = { email: next, current_password: PASSWORD }
      const asked = await send(app, 'POST', changePath, { token, json: change })
      expect([asked.status, asked.body]).toEqual([
        202,
        { email: next, expires_at: expect.any(String) },
      ])
      const wrong = { email: uniqueEmail(), current_password: 'not the password' }
      expect(code(await call(app, 'POST', changePath, { token, json: wrong }))).toBe(
        'invalid_credentials',
      )
      expect(code(await call(app, 'POST', changePath, { json: change }))).toBe('unauthorized')
      expect(code(await call(app, 'POST', changePath, { token, json: { email: 'nope' } }))).toBe(
        'validation_failed',
      )
      const other = await newUser()
      const taken = { email: other.email, current_password: PASSWORD }
      expect(code(await call(app, 'POST', changePath, { token, json: taken }))).toBe('email_taken')
      await bodyErrors('POST', changePath, { token })
      const confirmPath = '/v1/user/email/change/confirm'
      const confirm = await outboxToken(app, next, 'tessera_ec_')
      expect((await send(app, 'POST', confirmPath, { json: { token: confirm } })).status).toBe(204)
      expect(code(await call(app, 'POST', confirmPath, { json: { token: confirm } }))).toBe(
        'invalid_email_token',
      )
      await bodyErrors('POST', confirmPath)
      // The other account asks for the same address; the first account takes it meanwhile.
      const contested = uniqueEmail('contested')
      const otherToken = other.tokens.access_token
      const ask = (t: string) =>
        send(app, 'POST', changePath, {
          token: t,
          json: { email: contested, current_password: PASSWORD },
        })
      expect((await ask(otherToken)).status).toBe(202)
      const late = await outboxToken(app, contested, 'tessera_ec_')
      expect((await ask(token)).status).toBe(202)
      const first = await outboxToken(app, contested, 'tessera_ec_')
      expect((await call(app, 'POST', confirmPath, { json: { token: first } })).status).toBe(204)
      expect(code(await call(app, 'POST', confirmPath, { json: { token: late } }))).toBe(
        'email_taken',
      )
      // Cancel: from the old address's notice.
      const cancelPath = '/v1/user/email/change/cancel'
      const again = { email: uniqueEmail('cancelled'), current_password: PASSWORD }
      expect((await send(app, 'POST', changePath, { token: otherToken, json: again })).status).toBe(
        202,
      )
      const cancel = await outboxToken(app, other.email, 'tessera_ex_')
      expect((await send(app, 'POST', cancelPath, { json: { token: cancel } })).status).toBe(204)
      expect(code(await call(app, 'POST', cancelPath, { json: { token: cancel } }))).toBe(
        'invalid_email_token',
      )
      await bodyErrors('POST', cancelPath)
      // Password guesses count on the per-user budget (one attempt per window on `strict`).
      const limitedUser = uniqueEmail('change-limited')
      await registerAccount(
        strict.server.tessera,
        { email: limitedUser, password: PASSWORD },
        NO_CLIENT,
      )
      const strictToken = (
        (
          await send(strict, 'POST', '/v1/user/auth/login', {
            json: { email: limitedUser, password: PASSWORD },
          })
        ).body as TokenPairBody
      ).access_token
      const guess = { token: strictToken, json: wrong }
      expect((await call(strict, 'POST', changePath, guess)).status).toBe(401)
      const guessed = await call(strict, 'POST', changePath, guess)
      expect([guessed.status, code(guessed)]).toEqual([429, 'rate_limited'])
    })

    it('POST /v1/user/auth/password/forgot and POST /v1/user/auth/password/reset', async () => {
      const forgot = '/v1/user/auth/password/forgot'
      const reset = '/v1/user/auth/password/reset'
      const { email } = await newUser()
      expect((await send(app, 'POST', forgot, { json: { email } })).status).toBe(202)
      const invalid = await call(app, 'POST', forgot, { json: { email: 'not an address' } })
      expect(problemCode(invalid.body)).toBe('validation_failed')
      await bodyErrors('POST', forgot)
      const forged = `tessera_pr_${'A'.repeat(43)}`
      const spent = await send(app, 'POST', reset, {
        json: { token: forged, new_password: 'another-fine-passphrase-7' },
      })
      expect([spent.status, problemCode(spent.body)]).toEqual([400, 'invalid_reset_token'])
      const weak = await call(app, 'POST', reset, { json: { token: forged, new_password: 'x' } })
      expect(problemCode(weak.body)).toBe('weak_password')
      await bodyErrors('POST', reset)
      // A real code, from the mail this app wrote to its outbox (it has no SMTP_URL).
      await app.server.mail.sendDue()
      const code = await outboxResetCode(outboxDirectory(app.server.tessera.config), email)
      const done = await send(app, 'POST', reset, {
        json: { token: code, new_password: 'another-fine-passphrase-7' },
      })
      expect(done.status).toBe(204)
      // One request and one wrong token per address and window on `strict`.
      const strictEmail = uniqueEmail('strict-reset')
      expect((await call(strict, 'POST', forgot, { json: { email: strictEmail } })).status).toBe(
        202,
      )
      const limited = await call(strict, 'POST', forgot, { json: { email: strictEmail } })
      expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
      const wrong = { token: forged, new_password: 'another-fine-passphrase-7' }
      expect((await call(strict, 'POST', reset, { json: wrong })).status).toBe(400)
      const tooMany = await call(strict, 'POST', reset, { json: wrong })
      expect([tooMany.status, problemCode(tooMany.body)]).toEqual([429, 'rate_limited'])
    })

    it('POST /v1/user/auth/reauthenticate', async () => {
      const path = '/v1/user/auth/reauthenticate'
      const { tokens } = await newUser()
      const token = tokens.access_token
      expect((await send(app, 'POST', path, { token, json: { password: PASSWORD } })).status).toBe(
        204,
      )
      expect(problemCode((await call(app, 'POST', path, { token, json: {} })).body)).toBe(
        'validation_failed',
      )
      expect(
        problemCode(
          (await call(app, 'POST', path, { token, json: { password: 'not the password' } })).body,
        ),
      ).toBe('invalid_credentials')
      expect(
        problemCode((await call(app, 'POST', path, { json: { password: PASSWORD } })).body),
      ).toBe('unauthorized')
      await bodyErrors('POST', path, { token })
      // Guesses count against the per-account login limit (one attempt per window on `strict`).
      const email = uniqueEmail('reauth-limited')
      await registerAccount(strict.server.tessera, { email, password: PASSWORD }, NO_CLIENT)
      const strictToken = (
        (await send(strict, 'POST', '/v1/user/auth/login', { json: { email, password: PASSWORD } }))
          .body as TokenPairBody
      ).access_token
      expect(
        (await call(strict, 'POST', path, { token: strictToken, json: { password: 'wrong' } }))
          .status,
      ).toBe(401)
      const limited = await call(strict, 'POST', path, {
        token: strictToken,
        json: { password: 'wrong' },
      })
      expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
    })

    it('GET /v1/user/sessions and DELETE /v1/user/sessions/{id}', async () => {
      const template = '/v1/user/sessions/{id}'
      const { email, tokens } = await newUser()
      const second = (
        await send(app, 'POST', '/v1/user/auth/login', { json: { email, password: PASSWORD } })
      ).body as TokenPairBody
      const token = tokens.access_token
      const listed = (await call(app, 'GET', '/v1/user/sessions', { token })).body as {
        sessions: Array<{ id: string; current: boolean }>
      }
      expect(listed.sessions).toHaveLength(2)
      expect((await call(app, 'GET', '/v1/user/sessions')).status).toBe(401)
      const other = listed.sessions.find((s) => !s.current)!
      expect(
        (await call(app, 'DELETE', `/v1/user/sessions/${other.id}`, { token }, template)).status,
      ).toBe(204)
      expect(
        (await call(app, 'DELETE', `/v1/user/sessions/${other.id}`, { token }, template)).status,
      ).toBe(404)
      expect(
        (await call(app, 'DELETE', `/v1/user/sessions/${UNKNOWN_ID}`, { token }, template)).status,
      ).toBe(404)
      expect(
        (
          await call(
            app,
            'DELETE',
            `/v1/user/sessions/${other.id}`,
            { token: second.access_token },
            template,
          )
        ).status,
      ).toBe(401)
      const tooLarge = await call(
        app,
        'DELETE',
        `/v1/user/sessions/${other.id}`,
        {
          token,
          body: OVERSIZED,
          headers: { 'content-type': 'application/json' },
        },
        template,
      )
      expect(tooLarge.status).toBe(413)
    })

    it('POST, GET, DELETE /v1/user/tokens and /v1/user/tokens/{id}, a PAT exchange', async () => {
      const template = '/v1/user/tokens/{id}'
      const { tokens } = await newUser()
      const token = tokens.access_token
      const pat = await send(app, 'POST', '/v1/user/tokens', {
        token,
        json: { name: 'contract', scopes: ['read'], expires_in: 3600 },
      })
      expect(pat.status).toBe(201)
      const job = await send(app, 'POST', '/v1/user/tokens', {
        token,
        json: { name: 'job', kind: 'job', expires_in: 600 },
      })
      expect(job.status).toBe(201)
      const unknown = await send(app, 'POST', '/v1/user/tokens', {
        token,
        json: { name: 'x', audience: 'nowhere' },
      })
      expect(problemCode(unknown.body)).toBe('invalid_target')
      expect((await call(app, 'POST', '/v1/user/tokens', { json: { name: 'x' } })).status).toBe(401)
      const wrongType = await call(app, 'POST', '/v1/user/tokens', {
        token,
        headers: { 'content-type': 'text/plain' },
        body: '{}',
      })
      expect(wrongType.status).toBe(415)
      const tooLarge = (method: string, path: string, tpl = path) =>
        call(
          app,
          method,
          path,
          { token, body: OVERSIZED, headers: { 'content-type': 'application/json' } },
          tpl,
        )
      expect((await tooLarge('POST', '/v1/user/tokens')).status).toBe(413)
      expect((await tooLarge('DELETE', '/v1/user/tokens')).status).toBe(413)
      expect((await tooLarge('DELETE', `/v1/user/tokens/${UNKNOWN_ID}`, template)).status).toBe(413)

      const exchanged = await send(app, 'POST', '/v1/oauth/token', {
        json: {
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: (pat.body as { token: string }).token,
          subject_token_type: 'urn:tessera:params:oauth:token-type:pat',
        },
      })
      expect(exchanged.status).toBe(200)
      const derived = (exchanged.body as { access_token: string }).access_token
      const badTarget = await call(app, 'GET', '/v1/authz?audience=nowhere', { token }, '/v1/authz')
      expect(badTarget.status).toBe(400)

      const listed = await call(app, 'GET', '/v1/user/tokens', { token })
      expect(listed.status).toBe(200)
      expect((await call(app, 'GET', '/v1/user/tokens')).status).toBe(401)
      // A token made from a PAT cannot manage tokens.
      const fromPat = { token: derived }
      expect((await call(app, 'GET', '/v1/user/tokens', fromPat)).status).toBe(403)
      expect(
        (await send(app, 'POST', '/v1/user/tokens', { ...fromPat, json: { name: 'x' } })).status,
      ).toBe(403)
      expect((await call(app, 'DELETE', '/v1/user/tokens', fromPat)).status).toBe(403)
      const id = (pat.body as { id: string }).id
      expect((await call(app, 'DELETE', `/v1/user/tokens/${id}`, fromPat, template)).status).toBe(
        403,
      )
      expect((await call(app, 'DELETE', `/v1/user/tokens/${id}`, {}, template)).status).toBe(401)
      expect((await call(app, 'DELETE', `/v1/user/tokens/${id}`, { token }, template)).status).toBe(
        204,
      )
      expect((await call(app, 'DELETE', `/v1/user/tokens/${id}`, { token }, template)).status).toBe(
        404,
      )
      expect((await call(app, 'DELETE', '/v1/user/tokens')).status).toBe(401)
      const all = await call(app, 'DELETE', '/v1/user/tokens', { token })
      expect(all.body).toEqual({ revoked: 1 })
    })

    it('passkeys: registration, list, removal, passwordless sign-in', async () => {
      const template = '/v1/user/passkeys/{id}'
      const { tokens } = await newUser()
      const token = tokens.access_token
      const authenticator = new SoftwareAuthenticator('http://localhost:8000')
      const begin = () => call(app, 'POST', '/v1/user/passkeys/registration-options', { token })
      const options = await begin()
      expect(options.status).toBe(200)
      const begun = options.body as { options: never; challenge: string }
      const registered = await send(app, 'POST', '/v1/user/passkeys', {
        token,
        json: {
          name: 'Key',
          challenge: begun.challenge,
          response: authenticator.register(begun.options),
        },
      })
      expect(registered.status).toBe(201)
      const passkeyId = (registered.body as { id: string }).id
      const replayed = await call(app, 'POST', '/v1/user/passkeys', {
        token,
        json: {
          name: 'Key',
          challenge: begun.challenge,
          response: authenticator.register(begun.options),
        },
      })
      expect(problemCode(replayed.body)).toBe('challenge_expired')
      const again = (await begin()).body as { options: never; challenge: string }
      const foreign = new SoftwareAuthenticator('https://evil.example')
      const refused = await call(app, 'POST', '/v1/user/passkeys', {
        token,
        json: {
          name: 'Key',
          challenge: again.challenge,
          response: foreign.register(again.options),
        },
      })
      expect([refused.status, problemCode(refused.body)]).toEqual([401, 'passkey_invalid'])
      expect((await call(app, 'POST', '/v1/user/passkeys/registration-options')).status).toBe(401)
      expect((await call(app, 'GET', '/v1/user/passkeys', { token })).status).toBe(200)
      expect((await call(app, 'GET', '/v1/user/passkeys')).status).toBe(401)
      await bodyErrors('POST', '/v1/user/passkeys', { token })
      const tooLarge = (method: string, path: string, tpl = path) =>
        call(
          app,
          method,
          path,
          { token, body: OVERSIZED, headers: { 'content-type': 'application/json' } },
          tpl,
        )
      expect((await tooLarge('POST', '/v1/user/passkeys/registration-options')).status).toBe(413)
      expect((await tooLarge('DELETE', `/v1/user/passkeys/${UNKNOWN_ID}`, template)).status).toBe(
        413,
      )
      expect((await tooLarge('POST', '/v1/user/auth/passkey/options')).status).toBe(413)

      // 20 passkeys at most.
      let spare: { options: never; challenge: string } | undefined
      for (let i = 1; i < 20; i += 1) {
        if (i === 19) spare = (await begin()).body as { options: never; challenge: string }
        const next = (await begin()).body as { options: never; challenge: string }
        const more = new SoftwareAuthenticator('http://localhost:8000')
        const res = await app.request('/v1/user/passkeys', {
          token,
          json: {
            name: `Key ${i}`,
            challenge: next.challenge,
            response: more.register(next.options),
          },
        })
        expect(res.status).toBe(201)
      }
      const full = await begin()
      expect([full.status, problemCode(full.body)]).toEqual([409, 'passkey_limit_reached'])
      const overLimit = await call(app, 'POST', '/v1/user/passkeys', {
        token,
        json: {
          name: 'One more',
          challenge: spare!.challenge,
          response: new SoftwareAuthenticator('http://localhost:8000').register(spare!.options),
        },
      })
      expect([overLimit.status, problemCode(overLimit.body)]).toEqual([
        409,
        'passkey_limit_reached',
      ])

      // Passwordless sign-in.
      const signIn = await call(app, 'POST', '/v1/user/auth/passkey/options')
      expect(signIn.status).toBe(200)
      const login = signIn.body as { options: never; challenge: string }
      const assertion = authenticator.assert(login.options)
      const pair = await send(app, 'POST', '/v1/user/auth/passkey', {
        json: { challenge: login.challenge, response: assertion },
      })
      expect(pair.status).toBe(200)
      const spent = await call(app, 'POST', '/v1/user/auth/passkey', {
        json: { challenge: login.challenge, response: assertion },
      })
      expect([spent.status, problemCode(spent.body)]).toEqual([400, 'challenge_expired'])
      const other = (await call(app, 'POST', '/v1/user/auth/passkey/options')).body as {
        options: never
        challenge: string
      }
      const unknown = await call(app, 'POST', '/v1/user/auth/passkey', {
        json: { challenge: other.challenge, response: foreign.assert(other.options) },
      })
      expect([unknown.status, problemCode(unknown.body)]).toEqual([401, 'passkey_invalid'])
      await bodyErrors('POST', '/v1/user/auth/passkey')

      // A disabled account's passkey signs in no more.
      const victim = await newUser()
      const key = new SoftwareAuthenticator('http://localhost:8000')
      const reg = (
        await call(app, 'POST', '/v1/user/passkeys/registration-options', {
          token: victim.tokens.access_token,
        })
      ).body as { options: never; challenge: string }
      await app.request('/v1/user/passkeys', {
        token: victim.tokens.access_token,
        json: { name: 'Key', challenge: reg.challenge, response: key.register(reg.options) },
      })
      await setDisabled(app.server.tessera, victim.id, true)
      const disabledOptions = (await call(app, 'POST', '/v1/user/auth/passkey/options')).body as {
        options: never
        challenge: string
      }
      const disabled = await call(app, 'POST', '/v1/user/auth/passkey', {
        json: {
          challenge: disabledOptions.challenge,
          response: key.assert(disabledOptions.options),
        },
      })
      expect([disabled.status, problemCode(disabled.body)]).toEqual([403, 'account_disabled'])

      // Removal: 401 without a token, 404 for an unknown id.
      const anonymous = await call(app, 'DELETE', `/v1/user/passkeys/${UNKNOWN_ID}`, {}, template)
      expect(anonymous.status).toBe(401)
      const missing = await call(
        app,
        'DELETE',
        `/v1/user/passkeys/${UNKNOWN_ID}`,
        { token },
        template,
      )
      expect(missing.status).toBe(404)
      const removed = await call(
        app,
        'DELETE',
        `/v1/user/passkeys/${passkeyId}`,
        { token },
        template,
      )
      expect(removed.status).toBe(204)

      // 429: the per-address login budget, on an app of its own (the others' logins share theirs).
      const onePerAddress = await makeTestApp({ env: { RATE_LIMIT_LOGIN_PER_IP: '1' } })
      try {
        expect((await call(onePerAddress, 'POST', '/v1/user/auth/passkey/options')).status).toBe(
          200,
        )
        const tooMany = await call(onePerAddress, 'POST', '/v1/user/auth/passkey/options')
        expect(tooMany.status).toBe(429)
      } finally {
        await onePerAddress.close()
      }
    })

    it('second factors: /v1/user/mfa/..., POST /v1/user/auth/mfa', async () => {
      const oversized = (token?: string) => ({
        ...(token === undefined ? {} : { token }),
        body: OVERSIZED,
        headers: { 'content-type': 'application/json' },
      })
      const { email, id, tokens } = await newUser()
      const token = tokens.access_token
      // GET /v1/user/mfa
      expect((await call(app, 'GET', '/v1/user/mfa', { token })).body).toMatchObject({
        totp: 'none',
      })
      expect((await call(app, 'GET', '/v1/user/mfa')).status).toBe(401)
      // POST /v1/user/mfa/totp/confirm before any enrolment: 400 mfa_not_enrolled.
      const confirmPath = '/v1/user/mfa/totp/confirm'
      expect(
        problemCode((await call(app, 'POST', confirmPath, { token, json: { code: '1' } })).body),
      ).toBe('mfa_not_enrolled')
      // POST /v1/user/mfa/recovery-codes without TOTP: 400.
      const codesPath = '/v1/user/mfa/recovery-codes'
      expect(problemCode((await call(app, 'POST', codesPath, { token })).body)).toBe(
        'mfa_not_enrolled',
      )
      // POST /v1/user/mfa/totp
      const started = await call(app, 'POST', '/v1/user/mfa/totp', { token })
      expect(started.status).toBe(201)
      const { secret } = started.body as { secret: string }
      expect((await call(app, 'POST', '/v1/user/mfa/totp', oversized(token))).status).toBe(413)
      expect((await call(app, 'POST', '/v1/user/mfa/totp')).status).toBe(401)
      expect((await call(app, 'POST', confirmPath, { json: { code: '1' } })).status).toBe(401)
      await bodyErrors('POST', confirmPath, { token })
      const confirmed = await send(app, 'POST', confirmPath, {
        token,
        json: { code: totpCode(app, secret) },
      })
      expect(confirmed.status).toBe(200)
      const { recovery_codes } = confirmed.body as { recovery_codes: string[] }
      expect((await call(app, 'POST', '/v1/user/mfa/totp', { token })).status).toBe(409)
      // POST /v1/user/mfa/recovery-codes
      const regenerated = await call(app, 'POST', codesPath, { token })
      expect(regenerated.status).toBe(200)
      const fresh = (regenerated.body as { recovery_codes: string[] }).recovery_codes
      expect(fresh).not.toEqual(recovery_codes)
      expect((await call(app, 'POST', codesPath)).status).toBe(401)
      expect((await call(app, 'POST', codesPath, oversized(token))).status).toBe(413)

      // POST /v1/user/auth/login answers mfa_required; POST /v1/user/auth/mfa
      const mfaPath = '/v1/user/auth/mfa'
      const ticketOf = async () => {
        const first = await call(app, 'POST', '/v1/user/auth/login', {
          json: { email, password: PASSWORD },
        })
        expect([first.status, problemCode(first.body)]).toEqual([401, 'mfa_required'])
        return (first.body as { mfa_ticket: string }).mfa_ticket
      }
      const ticket = await ticketOf()
      expect(
        problemCode((await call(app, 'POST', mfaPath, { json: { mfa_ticket: ticket } })).body),
      ).toBe('validation_failed')
      await bodyErrors('POST', mfaPath)
      const pair = await send(app, 'POST', mfaPath, {
        json: { mfa_ticket: ticket, recovery_code: fresh[0] },
      })
      expect(pair.status).toBe(200)
      const mfaToken = (pair.body as TokenPairBody).access_token
      // Spent.
      expect(
        problemCode(
          (
            await call(app, 'POST', mfaPath, {
              json: { mfa_ticket: ticket, recovery_code: fresh[1] },
            })
          ).body,
        ),
      ).toBe('invalid_mfa_ticket')
      // 401: the password changed since the ticket; 403: the account was disabled since.
      const stale = await ticketOf()
      await app.server.tessera.db
        .updateTable('users')
        .set((eb) => ({ credential_version: eb('credential_version', '+', 1) }))
        .where('id', '=', id)
        .execute()
      expect(
        (await call(app, 'POST', mfaPath, { json: { mfa_ticket: stale, recovery_code: fresh[1] } }))
          .status,
      ).toBe(401)
      const beforeDisable = await ticketOf()
      await app.server.tessera.db
        .updateTable('users')
        .set({ disabled: 1 })
        .where('id', '=', id)
        .execute()
      const disabled = await call(app, 'POST', mfaPath, {
        json: { mfa_ticket: beforeDisable, recovery_code: fresh[2] },
      })
      expect([disabled.status, problemCode(disabled.body)]).toEqual([403, 'account_disabled'])
      await app.server.tessera.db
        .updateTable('users')
        .set({ disabled: 0 })
        .where('id', '=', id)
        .execute()

      // POST /v1/user/mfa/step-up
      const stepPath = '/v1/user/mfa/step-up'
      app.clock.advance(60_000)
      const stepped = await send(app, 'POST', stepPath, {
        token: mfaToken,
        json: { totp_code: totpCode(app, secret) },
      })
      expect(stepped.status).toBe(200)
      expect(
        problemCode((await call(app, 'POST', stepPath, { token: mfaToken, json: {} })).body),
      ).toBe('validation_failed')
      expect((await call(app, 'POST', stepPath, { json: { totp_code: '1' } })).status).toBe(401)
      await bodyErrors('POST', stepPath, { token: mfaToken })

      // DELETE /v1/user/mfa/totp
      const totpPath = '/v1/user/mfa/totp'
      expect(
        problemCode(
          (await call(app, 'DELETE', totpPath, { token: mfaToken, json: { code: '000000x' } }))
            .body,
        ),
      ).toBe('invalid_mfa_code')
      expect((await call(app, 'DELETE', totpPath)).status).toBe(401)
      await bodyErrors('DELETE', totpPath, { token: mfaToken })
      expect((await call(app, 'DELETE', totpPath, { token: mfaToken })).status).toBe(204)

      // 429s: RATE_LIMIT_MFA_PER_ACCOUNT=1 on `strict`, one wrong code per account and window.
      const wrong = (code: string) => (code === '123456' ? '654321' : '123456')
      const strictUser = async () => {
        const strictEmail = uniqueEmail('mfa-limited')
        await registerAccount(
          strict.server.tessera,
          { email: strictEmail, password: PASSWORD },
          NO_CLIENT,
        )
        return (
          (
            await send(strict, 'POST', '/v1/user/auth/login', {
              json: { email: strictEmail, password: PASSWORD },
            })
          ).body as TokenPairBody
        ).access_token
      }
      const pending = await strictUser()
      const pendingSecret = (
        (await call(strict, 'POST', totpPath, { token: pending })).body as { secret: string }
      ).secret
      const badConfirm = { token: pending, json: { code: wrong(totpCode(strict, pendingSecret)) } }
      expect((await call(strict, 'POST', confirmPath, badConfirm)).status).toBe(400)
      expect((await call(strict, 'POST', confirmPath, badConfirm)).status).toBe(429)
      const enrolled = await strictUser()
      const enrolledSecret = (await enrolTotp(strict, enrolled)).secret
      const bad = wrong(totpCode(strict, enrolledSecret, 1))
      const badStepUp = { token: enrolled, json: { totp_code: bad } }
      expect((await call(strict, 'POST', stepPath, badStepUp)).status).toBe(400)
      expect((await call(strict, 'POST', stepPath, badStepUp)).status).toBe(429)
      const badRemove = { token: enrolled, json: { code: bad } }
      expect((await call(strict, 'DELETE', totpPath, badRemove)).status).toBe(429)
    })

    it('a passkey as second factor: the webauthn-options routes, webauthn proofs', async () => {
      const passkeyUser = async (target: TestApp) => {
        // `strict` registers one account per address: its accounts are made directly.
        const user =
          target === app
            ? await newUser()
            : await (async () => {
                const address = uniqueEmail('mfa-passkey-limited')
                await registerAccount(
                  target.server.tessera,
                  { email: address, password: PASSWORD },
                  NO_CLIENT,
                )
                const loggedIn = await send(target, 'POST', '/v1/user/auth/login', {
                  json: { email: address, password: PASSWORD },
                })
                return { email: address, tokens: loggedIn.body as TokenPairBody }
              })()
        const authenticator = new SoftwareAuthenticator('http://localhost:8000')
        const token = user.tokens.access_token
        const reg = (
          await call(target, 'POST', '/v1/user/passkeys/registration-options', { token })
        ).body as { options: never; challenge: string }
        const added = await target.request('/v1/user/passkeys', {
          token,
          json: {
            name: 'Key',
            challenge: reg.challenge,
            response: authenticator.register(reg.options),
          },
        })
        expect(added.status).toBe(201)
        return { email: user.email, token, authenticator }
      }
      type Begun = { options: never; challenge: string }
      const optionsPath = '/v1/user/auth/mfa/webauthn-options'
      const { email, token, authenticator } = await passkeyUser(app)
      const first = await call(app, 'POST', '/v1/user/auth/login', {
        json: { email, password: PASSWORD },
      })
      const mfa_ticket = (first.body as { mfa_ticket: string }).mfa_ticket
      const begun = await send(app, 'POST', optionsPath, { json: { mfa_ticket } })
      expect(begun.status).toBe(200)
      const options = begun.body as Begun
      const bad = await call(app, 'POST', optionsPath, {
        json: { mfa_ticket: `tessera_mt_${'A'.repeat(43)}` },
      })
      expect([bad.status, problemCode(bad.body)]).toEqual([400, 'invalid_mfa_ticket'])
      await bodyErrors('POST', optionsPath)
      // POST /v1/user/auth/mfa with `webauthn`: another passkey is refused, the right one opens.
      const foreign = await call(app, 'POST', '/v1/user/auth/mfa', {
        json: {
          mfa_ticket,
          webauthn: {
            challenge: options.challenge,
            response: new SoftwareAuthenticator('http://localhost:8000').assert(options.options),
          },
        },
      })
      expect([foreign.status, problemCode(foreign.body)]).toEqual([401, 'passkey_invalid'])
      const again = (await send(app, 'POST', optionsPath, { json: { mfa_ticket } })).body as Begun
      const opened = await send(app, 'POST', '/v1/user/auth/mfa', {
        json: {
          mfa_ticket,
          webauthn: { challenge: again.challenge, response: authenticator.assert(again.options) },
        },
      })
      expect(opened.status).toBe(200)
      const spent = await call(app, 'POST', '/v1/user/auth/mfa', {
        json: {
          mfa_ticket: (
            (
              await call(app, 'POST', '/v1/user/auth/login', {
                json: { email, password: PASSWORD },
              })
            ).body as { mfa_ticket: string }
          ).mfa_ticket,
          webauthn: { challenge: again.challenge, response: authenticator.assert(again.options) },
        },
      })
      expect([spent.status, problemCode(spent.body)]).toEqual([400, 'challenge_expired'])

      // POST /v1/user/mfa/step-up/webauthn-options and a passkey step-up.
      const stepOptionsPath = '/v1/user/mfa/step-up/webauthn-options'
      const stepBegun = await call(app, 'POST', stepOptionsPath, { token })
      expect(stepBegun.status).toBe(200)
      const stepOptions = stepBegun.body as Begun
      const refused = await call(app, 'POST', '/v1/user/mfa/step-up', {
        token,
        json: {
          webauthn: {
            challenge: stepOptions.challenge,
            response: new SoftwareAuthenticator('http://localhost:8000').assert(
              stepOptions.options,
            ),
          },
        },
      })
      expect([refused.status, problemCode(refused.body)]).toEqual([401, 'passkey_invalid'])
      const retry = (await call(app, 'POST', stepOptionsPath, { token })).body as Begun
      const raised = await send(app, 'POST', '/v1/user/mfa/step-up', {
        token,
        json: {
          webauthn: { challenge: retry.challenge, response: authenticator.assert(retry.options) },
        },
      })
      expect(raised.status).toBe(200)
      const none = await newUser()
      const notEnrolled = await call(app, 'POST', stepOptionsPath, {
        token: none.tokens.access_token,
      })
      expect([notEnrolled.status, problemCode(notEnrolled.body)]).toEqual([
        400,
        'factor_not_enrolled',
      ])
      expect((await call(app, 'POST', stepOptionsPath)).status).toBe(401)
      const tooLarge = await call(app, 'POST', stepOptionsPath, {
        token,
        body: OVERSIZED,
        headers: { 'content-type': 'application/json' },
      })
      expect(tooLarge.status).toBe(413)

      // 429s: RATE_LIMIT_MFA_PER_ACCOUNT=1 on `strict`: an abandoned options request spends it.
      const limited = await passkeyUser(strict)
      const limitedTicket = (
        (
          await call(strict, 'POST', '/v1/user/auth/login', {
            json: { email: limited.email, password: PASSWORD },
          })
        ).body as { mfa_ticket: string }
      ).mfa_ticket
      const limitedBody = { json: { mfa_ticket: limitedTicket } }
      expect((await call(strict, 'POST', optionsPath, limitedBody)).status).toBe(200)
      expect((await call(strict, 'POST', optionsPath, limitedBody)).status).toBe(429)
      const over = await call(strict, 'POST', stepOptionsPath, { token: limited.token })
      expect(over.status).toBe(429)
    })

    it('POST /v1/user/auth/mfa 429 and POST /v1/admin/users/{id}/mfa/reset', async () => {
      const template = '/v1/admin/users/{id}/mfa/reset'
      const strictEmail = uniqueEmail('mfa-login-limited')
      await registerAccount(
        strict.server.tessera,
        { email: strictEmail, password: PASSWORD },
        NO_CLIENT,
      )
      const strictPair = (
        await send(strict, 'POST', '/v1/user/auth/login', {
          json: { email: strictEmail, password: PASSWORD },
        })
      ).body as TokenPairBody
      await enrolTotp(strict, strictPair.access_token)
      // The login budget of `strict` is one attempt; this is the account's first since its reset.
      const first = await call(strict, 'POST', '/v1/user/auth/login', {
        json: { email: strictEmail, password: PASSWORD },
      })
      const strictTicket = (first.body as { mfa_ticket: string }).mfa_ticket
      const mfaPath = '/v1/user/auth/mfa'
      expect(
        (
          await call(strict, 'POST', mfaPath, {
            json: { mfa_ticket: strictTicket, totp_code: '12' },
          })
        ).status,
      ).toBe(400)
      expect(
        (
          await call(strict, 'POST', mfaPath, {
            json: { mfa_ticket: strictTicket, totp_code: '12' },
          })
        ).status,
      ).toBe(429)

      const root = await signedInSuperuser(app)
      const target = await newUser()
      const path = `/v1/admin/users/${target.id}/mfa/reset`
      const reason = { reason: 'lost the phone' }
      expect(
        (await call(app, 'POST', path, { token: root.tokens.access_token, json: reason }, template))
          .status,
      ).toBe(204)
      expect(
        problemCode(
          (
            await call(
              app,
              'POST',
              path,
              { token: root.tokens.access_token, json: { reason: '' } },
              template,
            )
          ).body,
        ),
      ).toBe('validation_failed')
      expect(
        (
          await call(
            app,
            'POST',
            `/v1/admin/users/${UNKNOWN_ID}/mfa/reset`,
            { token: root.tokens.access_token, json: reason },
            template,
          )
        ).status,
      ).toBe(404)
      expect((await call(app, 'POST', path, { json: reason }, template)).status).toBe(401)
      expect(
        problemCode(
          (
            await call(
              app,
              'POST',
              path,
              { token: (await newUser()).tokens.access_token, json: reason },
              template,
            )
          ).body,
        ),
      ).toBe('forbidden')
      await bodyErrors('POST', path, { token: root.tokens.access_token }, template)
    })

    it('POST /v1/admin/users/{id}/promote', async () => {
      const template = '/v1/admin/users/{id}/promote'
      // A superuser with a second factor (README, "Second factors").
      const adminToken = (await signedInSuperuser(app)).tokens
      const target = await newUser()
      const promoted = await call(
        app,
        'POST',
        `/v1/admin/users/${target.id}/promote`,
        { token: adminToken.access_token },
        template,
      )
      expect(promoted.body).toMatchObject({
        id: target.id,
        account_type: 'superuser',
        verified: true,
      })
      expect(
        (
          await call(
            app,
            'POST',
            `/v1/admin/users/${UNKNOWN_ID}/promote`,
            { token: adminToken.access_token },
            template,
          )
        ).status,
      ).toBe(404)
      const regular = await newUser()
      expect(
        problemCode(
          (
            await call(
              app,
              'POST',
              `/v1/admin/users/${target.id}/promote`,
              { token: regular.tokens.access_token },
              template,
            )
          ).body,
        ),
      ).toBe('forbidden')
      expect(
        (await call(app, 'POST', `/v1/admin/users/${target.id}/promote`, {}, template)).status,
      ).toBe(401)
      const tooLarge = await call(
        app,
        'POST',
        `/v1/admin/users/${target.id}/promote`,
        {
          token: adminToken.access_token,
          body: OVERSIZED,
          headers: { 'content-type': 'application/json' },
        },
        template,
      )
      expect(tooLarge.status).toBe(413)
    })

    it('the admin user routes (/v1/admin/users...)', async () => {
      const root = await signedInSuperuser(app)
      const token = { token: root.tokens.access_token }
      const regular = await newUser()
      const asRegular = { token: regular.tokens.access_token }
      const target = await newUser()
      const one = '/v1/admin/users/{id}'
      const list = '/v1/admin/users'
      const reason = { reason: 'contract test' }

      const page = await call(app, 'GET', `${list}?limit=1`, token, list)
      expect(page.status).toBe(200)
      const cursor = (page.body as { next_cursor: string }).next_cursor
      expect(
        (await call(app, 'GET', `${list}?cursor=${cursor}&q=contract`, token, list)).status,
      ).toBe(200)
      expect(problemCode((await call(app, 'GET', `${list}?limit=0`, token, list)).body)).toBe(
        'validation_failed',
      )
      expect(problemCode((await call(app, 'GET', `${list}?cursor=AAAA`, token, list)).body)).toBe(
        'invalid_cursor',
      )
      expect((await call(app, 'GET', list)).status).toBe(401)
      expect((await call(app, 'GET', list, asRegular)).status).toBe(403)

      const shown = await call(app, 'GET', `${list}/${target.id}`, token, one)
      expect(shown.body).toMatchObject({ id: target.id, disabled: false })
      expect((await call(app, 'GET', `${list}/${UNKNOWN_ID}`, token, one)).status).toBe(404)
      expect((await call(app, 'GET', `${list}/${target.id}`, {}, one)).status).toBe(401)
      expect((await call(app, 'GET', `${list}/${target.id}`, asRegular, one)).status).toBe(403)

      /** [suffix, a body that succeeds, status, may the superuser target themself] */
      const changes: [string, unknown, number, boolean][] = [
        ['disable', reason, 204, false],
        ['enable', reason, 204, true],
        ['account-type', { account_type: 'academic', ...reason }, 200, false],
        ['verification', { verified: true, ...reason }, 200, true],
        ['sessions/revoke', undefined, 204, true],
        ['password-reset', undefined, 202, true],
      ]
      for (const [suffix, json, status, onSelf] of changes) {
        const template = `${one}/${suffix}`
        const path = (id: string) => `${list}/${id}/${suffix}`
        const withBody = (init: Init): Init => (json === undefined ? init : { ...init, json })
        const ok =
          json === undefined
            ? await call(app, 'POST', path(target.id), token, template)
            : await send(app, 'POST', path(target.id), { ...token, json }, template)
        expect(ok.status, suffix).toBe(status)
        expect((await call(app, 'POST', path(UNKNOWN_ID), withBody(token), template)).status).toBe(
          404,
        )
        expect((await call(app, 'POST', path(target.id), withBody({}), template)).status).toBe(401)
        expect(
          (await call(app, 'POST', path(target.id), withBody(asRegular), template)).status,
        ).toBe(403)
        if (!onSelf) {
          const self = await call(app, 'POST', path(root.user.id), withBody(token), template)
          expect(problemCode(self.body)).toBe('cannot_target_self')
        }
        if (json === undefined) {
          const tooLarge = await call(
            app,
            'POST',
            path(target.id),
            { ...token, body: OVERSIZED, headers: { 'content-type': 'application/json' } },
            template,
          )
          expect(tooLarge.status).toBe(413)
        } else {
          const invalid = await call(app, 'POST', path(target.id), { ...token, json: {} }, template)
          expect(problemCode(invalid.body)).toBe('validation_failed')
          await bodyErrors('POST', path(target.id), token, template)
        }
      }
      // Stale: a session that proved the account longer ago than REAUTH_MAX_AGE.
      app.clock.advance(301_000)
      const stale = (
        await send(app, 'POST', '/v1/user/auth/refresh', {
          json: { refresh_token: root.tokens.refresh_token },
        })
      ).body as TokenPairBody
      const refused = await call(
        app,
        'DELETE',
        `${list}/${target.id}`,
        { token: stale.access_token },
        one,
      )
      expect(problemCode(refused.body)).toBe('reauthentication_required')
      const fresh = await signedInSuperuser(app)
      const freshToken = { token: fresh.tokens.access_token }
      expect((await call(app, 'DELETE', `${list}/${fresh.user.id}`, freshToken, one)).status).toBe(
        409,
      )
      expect((await call(app, 'DELETE', `${list}/${target.id}`, {}, one)).status).toBe(401)
      expect((await call(app, 'DELETE', `${list}/${target.id}`, asRegular, one)).status).toBe(403)
      expect((await call(app, 'DELETE', `${list}/${target.id}`, freshToken, one)).status).toBe(204)
      expect((await call(app, 'DELETE', `${list}/${target.id}`, freshToken, one)).status).toBe(404)
    })

    it('DELETE /v1/user/me', async () => {
      const path = '/v1/user/me'
      const user = await newUser()
      expect((await call(app, 'DELETE', path)).status).toBe(401)
      app.clock.advance(301_000)
      const stale = (
        await send(app, 'POST', '/v1/user/auth/refresh', {
          json: { refresh_token: user.tokens.refresh_token },
        })
      ).body as TokenPairBody
      const refused = await call(app, 'DELETE', path, { token: stale.access_token })
      expect(problemCode(refused.body)).toBe('reauthentication_required')
      const fresh = await newUser()
      expect((await call(app, 'DELETE', path, { token: fresh.tokens.access_token })).status).toBe(
        204,
      )
    })

    it('GET /v1/admin/audit', async () => {
      const path = '/v1/admin/audit'
      const root = await signedInSuperuser(app)
      const token = root.tokens.access_token
      const page = await call(app, 'GET', `${path}?limit=2`, { token }, path)
      expect(page.res.status).toBe(200)
      const body = page.body as { events: unknown[]; next_cursor: string | null }
      expect(body.events).toHaveLength(2)
      expect(body.next_cursor).not.toBeNull()
      const mine = await call(
        app,
        'GET',
        `${path}?user_id=${root.user.id}&event=login_succeeded&since=2000-01-01`,
        { token },
        path,
      )
      expect((mine.body as { events: Array<{ user_id: string }> }).events[0]!.user_id).toBe(
        root.user.id,
      )
      expect(
        problemCode((await call(app, 'GET', `${path}?cursor=nope`, { token }, path)).body),
      ).toBe('invalid_cursor')
      expect(problemCode((await call(app, 'GET', `${path}?limit=501`, { token }, path)).body)).toBe(
        'validation_failed',
      )
      const regular = await newUser()
      expect(
        problemCode(
          (await call(app, 'GET', path, { token: regular.tokens.access_token }, path)).body,
        ),
      ).toBe('forbidden')
      expect((await call(app, 'GET', path, {}, path)).status).toBe(401)
    })

    it('POST /v1/token/introspect', async () => {
      const path = '/v1/token/introspect'
      const secret = { 'x-service-secret': SECRET }
      const { tokens } = await newUser()
      const form = (body: Record<string, string>, headers: Record<string, string> = secret) =>
        call(app, 'POST', path, {
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          body: new URLSearchParams(body).toString(),
        })
      await checkRequestBody('POST', path, 'application/x-www-form-urlencoded', {
        token: tokens.access_token,
        token_type_hint: 'access_token',
      })
      const active = await form({ token: tokens.access_token, token_type_hint: 'access_token' })
      expect(active.body).toMatchObject({ active: true, token_type: 'Bearer' })
      expect((await form({ token: 'garbage' })).body).toEqual({ active: false })
      expect((await form({ token: tokens.refresh_token })).body).toEqual({ active: false })
      expect(
        (await send(app, 'POST', path, { json: { token: tokens.access_token }, headers: secret }))
          .body,
      ).toMatchObject({ active: true })

      // A service account's own bearer token may introspect too.
      const serviceEmail = uniqueEmail('svc')
      await send(app, 'POST', '/v1/user/auth/register-service', {
        json: { email: serviceEmail, password: PASSWORD },
        headers: secret,
      })
      const service = (
        await send(app, 'POST', '/v1/user/auth/login', {
          json: { email: serviceEmail, password: PASSWORD },
        })
      ).body as TokenPairBody
      expect(
        (
          await form(
            { token: tokens.access_token },
            { authorization: `Bearer ${service.access_token}` },
          )
        ).body,
      ).toMatchObject({ active: true })

      const refusedCallers: Array<Record<string, string>> = [
        {},
        { 'x-service-secret': 'wrong-secret-0123456789' },
        { authorization: `Bearer ${tokens.access_token}` },
      ]
      for (const auth of refusedCallers) {
        const refused = await form({ token: tokens.access_token }, auth)
        expect([refused.status, problemCode(refused.body)]).toEqual([401, 'unauthorized'])
      }
      expect(problemCode((await form({})).body)).toBe('validation_failed')
      expect(problemCode((await form({ token: 'x'.repeat(8193) })).body)).toBe('validation_failed')
      expect(
        problemCode((await call(app, 'POST', path, { json: { token: '' }, headers: secret })).body),
      ).toBe('validation_failed')
      await bodyErrors('POST', path, { headers: secret })
    })

    it('GET /v1/authz', async () => {
      const path = '/v1/authz'
      const { id, tokens } = await newUser()
      const ok = await call(app, 'GET', path, { token: tokens.access_token })
      expect(ok.body).toEqual({ sub: id, acct: 'regular', verified: false })
      expect(ok.res.headers.get('x-auth-subject')).toBe(id)
      expect(ok.res.headers.get('x-auth-verified')).toBe('false')
      expect((await call(app, 'GET', path)).status).toBe(401)
      expect(
        (await call(app, 'GET', path, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })).status,
      ).toBe(401)
      const bad = await call(app, 'GET', path, { token: `${tokens.access_token.slice(0, -4)}AAAA` })
      expect(bad.res.headers.get('www-authenticate')).toContain('error="invalid_token"')
    })

    it('POST /api/v1/auth/register', async () => {
      const path = '/api/v1/auth/register'
      const email = uniqueEmail('archive')
      const created = await send(app, 'POST', path, {
        json: { email, password: PASSWORD, full_name: 'Rosalind Franklin', role: 'researcher' },
      })
      expect(created.body).toMatchObject({
        email,
        full_name: 'Rosalind Franklin',
        role: 'researcher',
      })
      expect(
        (
          await send(app, 'POST', path, {
            json: { email: uniqueEmail(), password: PASSWORD, full_name: null },
          })
        ).body,
      ).toMatchObject({ full_name: null, role: 'researcher' })
      expect(
        problemCode(
          (
            await call(app, 'POST', path, {
              json: { email: uniqueEmail(), password: PASSWORD, role: 'admin' },
            })
          ).body,
        ),
      ).toBe('validation_failed')
      expect(
        problemCode(
          (await call(app, 'POST', path, { json: { email: uniqueEmail(), password: 'password' } }))
            .body,
        ),
      ).toBe('weak_password')
      expect(
        problemCode((await call(app, 'POST', path, { json: { email, password: PASSWORD } })).body),
      ).toBe('email_taken')
      await bodyErrors('POST', path)
      // One registration per window on `strict`, shared with /v1/user/auth/register.
      await call(strict, 'POST', path, { json: { email: uniqueEmail(), password: PASSWORD } })
      const limited = await call(strict, 'POST', path, {
        json: { email: uniqueEmail(), password: PASSWORD },
      })
      expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
    })

    it('federated login', async () => {
      // authorize, callback, exchange, DELETE /v1/user/identities/{provider}.
      const federation = await startFederation({ github: true })
      const { idp, github } = federation
      try {
        const fed = await federation.app({
          env: {
            // A provider whose issuer cannot be reached: 503 at authorize.
            OAUTH_GITLAB_ISSUER: 'http://127.0.0.1:1',
          },
        })
        const target = fed
        const authorizeTemplate = '/v1/user/authenticate/{provider}/authorize'
        const callbackTemplate = '/v1/user/authenticate/{provider}/callback'
        const pkce = clientPkce()
        const redirect = encodeURIComponent(CLIENT_REDIRECT_URI)
        const q = `?redirect_uri=${redirect}&${pkce.query}&state=contract`
        const manual = { redirect: 'manual' } as const
        const redirected = await call(
          target,
          'GET',
          `/v1/user/authenticate/google/authorize${q}`,
          manual,
          authorizeTemplate,
        )
        expect(redirected.status).toBe(302)
        expect(
          problemCode(
            (
              await call(
                target,
                'GET',
                '/v1/user/authenticate/google/authorize',
                manual,
                authorizeTemplate,
              )
            ).body,
          ),
        ).toBe('validation_failed')
        expect(
          (
            await call(
              target,
              'GET',
              `/v1/user/authenticate/orcid/authorize${q}`,
              manual,
              authorizeTemplate,
            )
          ).status,
        ).toBe(401)
        expect(
          (
            await call(
              target,
              'GET',
              `/v1/user/authenticate/nope/authorize${q}`,
              manual,
              authorizeTemplate,
            )
          ).status,
        ).toBe(404)
        const down = await call(
          target,
          'GET',
          `/v1/user/authenticate/gitlab/authorize${q}`,
          manual,
          authorizeTemplate,
        )
        expect([down.status, problemCode(down.body)]).toEqual([503, 'service_unavailable'])

        // A browser goes through the provider up to Tessera's callback.
        idp.current = {
          sub: `contract-${Date.now()}`,
          email: uniqueEmail('fed'),
          email_verified: true,
        }
        const browser = new Browser(target.url)
        const started = await call(
          target,
          'GET',
          `/v1/user/authenticate/google/authorize${q}`,
          { headers: { accept: 'application/json' } },
          authorizeTemplate,
        )
        expect(started.status).toBe(200)
        const cookie = /^(tessera_oauth_[0-9a-f]{16}=[^;]+)/.exec(
          started.res.headers.get('set-cookie') ?? '',
        )![1]!
        const next = await browser.toCallback(
          (started.body as { authorization_url: string }).authorization_url,
        )
        const callbackPath = next.slice(TESSERA_TEST_ISSUER.length)
        const headers = { cookie }
        const back = await call(
          target,
          'GET',
          callbackPath,
          { ...manual, headers },
          callbackTemplate,
        )
        expect(back.status).toBe(302)
        const replay = await call(
          target,
          'GET',
          callbackPath,
          { ...manual, headers },
          callbackTemplate,
        )
        expect([replay.status, problemCode(replay.body)]).toEqual([400, 'invalid_oauth_state'])
        expect(
          (
            await call(
              target,
              'GET',
              callbackPath.replace('/google/', '/nope/'),
              manual,
              callbackTemplate,
            )
          ).status,
        ).toBe(404)

        const code = new URL(back.res.headers.get('location')!).searchParams.get('code')!
        expect(new URL(back.res.headers.get('location')!).searchParams.get('state')).toBe(
          'contract',
        )
        const exchangePath = '/v1/user/auth/oauth/exchange'
        const pair = await send(target, 'POST', exchangePath, {
          json: { code, code_verifier: pkce.verifier },
        })
        expect(pair.status).toBe(200)
        const tokens = pair.body as TokenPairBody
        const spent = await call(target, 'POST', exchangePath, { json: { code } })
        expect([spent.status, problemCode(spent.body)]).toEqual([401, 'invalid_login_code'])
        expect(
          problemCode((await call(target, 'POST', exchangePath, { json: { code: 42 } })).body),
        ).toBe('validation_failed')
        const tooLarge = await call(target, 'POST', exchangePath, {
          headers: { 'content-type': 'application/json' },
          body: OVERSIZED,
        })
        expect(tooLarge.status).toBe(413)
        const wrongType = await call(target, 'POST', exchangePath, {
          headers: { 'content-type': 'text/plain' },
          body: '{}',
        })
        expect(wrongType.status).toBe(415)

        // A single-use link URL, followed in a browser; the provider (google) answers at once.
        const linkUrlTemplate = '/v1/user/identities/{provider}/link-url'
        const ticketTemplate = '/link/{ticket}'
        const bearer = { token: tokens.access_token }
        const issued = await send(
          target,
          'POST',
          '/v1/user/identities/cilogon/link-url',
          { ...bearer, json: { redirect_uri: CLIENT_REDIRECT_URI } },
          linkUrlTemplate,
        )
        expect(issued.status).toBe(201)
        const ticketPath = (issued.body as { url: string }).url.slice(TESSERA_TEST_ISSUER.length)
        const followed = await call(target, 'GET', ticketPath, manual, ticketTemplate)
        expect(followed.status).toBe(302)
        const again = await call(target, 'GET', ticketPath, manual, ticketTemplate)
        expect(again.status).toBe(400)
        const againJson = await call(
          target,
          'GET',
          ticketPath,
          { ...manual, headers: { accept: 'application/json' } },
          ticketTemplate,
        )
        expect(problemCode(againJson.body)).toBe('invalid_link_ticket')
        // Without a body, the flow ends on /link/done.
        const bare = await call(
          target,
          'POST',
          '/v1/user/identities/gitlab/link-url',
          bearer,
          linkUrlTemplate,
        )
        expect(bare.status).toBe(201)
        // gitlab cannot be reached: the flow cannot start.
        const unreachable = await call(
          target,
          'GET',
          (bare.body as { url: string }).url.slice(TESSERA_TEST_ISSUER.length),
          manual,
          ticketTemplate,
        )
        expect(unreachable.status).toBe(503)
        expect(
          (await call(target, 'GET', '/link/done?linked=cilogon', {}, '/link/done')).status,
        ).toBe(200)
        for (const [path, init, status, code] of [
          ['/v1/user/identities/cilogon/link-url', { json: {} }, 401, 'unauthorized'],
          ['/v1/user/identities/nope/link-url', { ...bearer, json: {} }, 404, 'not_found'],
          [
            '/v1/user/identities/cilogon/link-url',
            { ...bearer, json: { redirect_uri: 'https://evil.example/' } },
            400,
            'validation_failed',
          ],
          [
            '/v1/user/identities/cilogon/link-url',
            { ...bearer, headers: { 'content-type': 'text/plain' }, body: '{}' },
            415,
            'unsupported_media_type',
          ],
          [
            '/v1/user/identities/cilogon/link-url',
            { ...bearer, headers: { 'content-type': 'application/json' }, body: OVERSIZED },
            413,
            'payload_too_large',
          ],
        ] as const) {
          const refused = await call(target, 'POST', path, init, linkUrlTemplate)
          expect([path, refused.status, problemCode(refused.body)]).toEqual([path, status, code])
        }

        const unlinkTemplate = '/v1/user/identities/{provider}'
        const last = await call(
          target,
          'DELETE',
          '/v1/user/identities/google',
          { token: tokens.access_token },
          unlinkTemplate,
        )
        expect([last.status, problemCode(last.body)]).toEqual([409, 'last_login_method'])
        expect(
          (
            await call(
              target,
              'DELETE',
              '/v1/user/identities/github',
              { token: tokens.access_token },
              unlinkTemplate,
            )
          ).status,
        ).toBe(404)
        expect(
          (await call(target, 'DELETE', '/v1/user/identities/google', {}, unlinkTemplate)).status,
        ).toBe(401)
        // Linking and unlinking need a recent authentication (REAUTH_MAX_AGE, default 300 s).
        target.clock.advance(301_000)
        const stale = await call(
          target,
          'DELETE',
          '/v1/user/identities/google',
          { token: tokens.access_token },
          unlinkTemplate,
        )
        expect([stale.status, problemCode(stale.body)]).toEqual([401, 'reauthentication_required'])
        const staleLink = await call(
          target,
          'GET',
          `/v1/user/authenticate/google/authorize${q}`,
          { ...manual, token: tokens.access_token },
          authorizeTemplate,
        )
        expect([staleLink.status, problemCode(staleLink.body)]).toEqual([
          401,
          'reauthentication_required',
        ])
        target.clock.advance(-301_000)
        // With a password the identity is not the last way in.
        const me = (await (
          await target.request('/v1/user/me', { token: tokens.access_token })
        ).json()) as { id: string }
        await target.server.tessera.db
          .updateTable('users')
          .set({ password_hash: 'x' })
          .where('id', '=', me.id)
          .execute()
        expect(
          (
            await call(
              target,
              'DELETE',
              '/v1/user/identities/google',
              { token: tokens.access_token },
              unlinkTemplate,
            )
          ).status,
        ).toBe(204)

        // A disabled account cannot redeem its login code.
        github.current = {
          id: 777,
          login: 'd',
          name: null,
          emails: [{ email: uniqueEmail('gh'), primary: true, verified: true }],
        }
        const ghBrowser = new Browser(target.url)
        const ghStart = await ghBrowser.fetch(
          `${TESSERA_TEST_ISSUER}/v1/user/authenticate/github/authorize${q}`,
          { headers: { accept: 'application/json' } },
        )
        const { url } = await ghBrowser.follow(
          ((await ghStart.json()) as { authorization_url: string }).authorization_url,
        )
        const ghCode = url.searchParams.get('code')!
        const row = await target.server.tessera.db
          .selectFrom('identities')
          .select('user_id')
          .where('provider', '=', 'github')
          .executeTakeFirstOrThrow()
        await setDisabled(target.server.tessera, row.user_id, true)
        const disabled = await call(target, 'POST', exchangePath, {
          json: { code: ghCode, code_verifier: pkce.verifier },
        })
        expect([disabled.status, problemCode(disabled.body)]).toEqual([403, 'account_disabled'])

        // One request per route and window on `strict` (limited before the provider is looked up).
        for (const [path, template] of [
          [`/v1/user/authenticate/google/authorize${q}`, authorizeTemplate],
          [`/v1/user/authenticate/google/callback?code=c&state=s`, callbackTemplate],
        ] as const) {
          expect((await call(strict, 'GET', path, manual, template)).status).toBe(404)
          const limited = await call(strict, 'GET', path, manual, template)
          expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
        }
        // A link URL counts against authorize's budget, which the loop above spent.
        const unknownTicket = `/link/tessera_lt_${'A'.repeat(43)}`
        const limitedTicket = await call(strict, 'GET', unknownTicket, manual, '/link/{ticket}')
        expect([limitedTicket.status, limitedTicket.res.headers.get('retry-after')]).toEqual([
          429,
          expect.stringMatching(/^[1-9]\d*$/),
        ])
        expect((await call(strict, 'POST', exchangePath, { json: { code } })).status).toBe(401)
        const limited = await call(strict, 'POST', exchangePath, { json: { code } })
        expect([limited.status, problemCode(limited.body)]).toEqual([429, 'rate_limited'])
      } finally {
        await federation.close()
      }
    })

    it('service clients: client_credentials, introspection, registration, profiles', async () => {
      const basic = (client: { id: string; secret: string }, secret = client.secret) =>
        `Basic ${Buffer.from(`${client.id}:${secret}`).toString('base64')}`
      const all = await createClient(app.server.tessera, 'contract', [
        'introspect',
        'read-users',
        'register-service',
      ])
      const none = await createClient(app.server.tessera, 'contract-none', [])
      const tokenPath = '/v1/oauth/token'
      const grant = async (target: TestApp, fields: Record<string, string>, auth?: string) => {
        await checkRequestBody('POST', tokenPath, 'application/x-www-form-urlencoded', fields)
        return call(target, 'POST', tokenPath, {
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            ...(auth === undefined ? {} : { authorization: auth }),
          },
          body: new URLSearchParams(fields).toString(),
        })
      }
      const issued = await grant(app, { grant_type: 'client_credentials' }, basic(none))
      expect(issued.status).toBe(200)
      const posted = await grant(app, {
        grant_type: 'client_credentials',
        client_id: none.id,
        client_secret: none.secret,
        resource: 'tessera',
      })
      expect(posted.status).toBe(200)
      const clientToken = (issued.body as { access_token: string }).access_token
      const target = await grant(
        app,
        { grant_type: 'client_credentials', audience: 'elsewhere' },
        basic(none),
      )
      expect([target.status, problemCode(target.body)]).toEqual([400, 'invalid_target'])
      const wrong = await grant(app, { grant_type: 'client_credentials' }, basic(none, 'wrong'))
      expect([wrong.status, problemCode(wrong.body)]).toEqual([401, 'invalid_client_credentials'])
      const authz = await call(app, 'GET', '/v1/authz', { token: clientToken })
      expect(authz.res.headers.get('x-auth-account-type')).toBe('client')

      const introspect = (target: TestApp, token: string, auth: string) =>
        call(target, 'POST', '/v1/token/introspect', {
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
          body: new URLSearchParams({ token }).toString(),
        })
      await checkRequestBody('POST', '/v1/token/introspect', 'application/json', {
        token: clientToken,
        client_id: all.id,
        client_secret: all.secret,
      })
      expect((await introspect(app, clientToken, basic(all))).body).toMatchObject({
        active: true,
        acct: 'client',
      })
      const refused = await introspect(app, clientToken, basic(none))
      expect([refused.status, problemCode(refused.body)]).toEqual([403, 'permission_required'])
      const badClient = await introspect(app, clientToken, basic(all, 'wrong'))
      expect([badClient.status, problemCode(badClient.body)]).toEqual([
        401,
        'invalid_client_credentials',
      ])

      const registerPath = '/v1/user/auth/register-service'
      const register = (target: TestApp, auth: string) =>
        send(target, 'POST', registerPath, {
          headers: { authorization: auth },
          json: { email: uniqueEmail('svc'), password: PASSWORD },
        })
      expect((await register(app, basic(all))).status).toBe(201)
      const noPermission = await register(app, basic(none))
      expect([noPermission.status, problemCode(noPermission.body)]).toEqual([
        403,
        'permission_required',
      ])
      const badRegister = await register(app, basic(all, 'wrong'))
      expect([badRegister.status, problemCode(badRegister.body)]).toEqual([
        401,
        'invalid_client_credentials',
      ])

      const { id } = await newUser()
      const template = '/v1/service/users/{id}'
      const read = (target: TestApp, userId: string, auth?: string) =>
        call(
          target,
          'GET',
          `/v1/service/users/${userId}`,
          { headers: auth === undefined ? {} : { authorization: auth } },
          template,
        )
      expect((await read(app, id, basic(all))).status).toBe(200)
      expect((await read(app, UNKNOWN_ID, basic(all))).status).toBe(404)
      expect((await read(app, id, basic(none))).status).toBe(403)
      expect((await read(app, id)).status).toBe(401)

      // RATE_LIMIT_CLIENT_AUTH_PER_CLIENT=1 on `strict`: the second failure of one id is 429.
      const limited = await createClient(strict.server.tessera, 'contract-limited', [])
      const failTwice = async (attempt: () => Promise<{ status: number; body: unknown }>) => {
        expect((await attempt()).status).toBe(401)
        const second = await attempt()
        expect([second.status, problemCode(second.body)]).toEqual([429, 'rate_limited'])
      }
      const limitedAgain = async () => createClient(strict.server.tessera, 'contract-limited', [])
      await failTwice(() =>
        grant(strict, { grant_type: 'client_credentials' }, basic(limited, 'wrong')),
      )
      const forIntrospect = await limitedAgain()
      await failTwice(() => introspect(strict, clientToken, basic(forIntrospect, 'wrong')))
      const forRegister = await limitedAgain()
      await failTwice(() => register(strict, basic(forRegister, 'wrong')))
      const forRead = await limitedAgain()
      await failTwice(() => read(strict, id, basic(forRead, 'wrong')))
    })

    it('device login: POST /v1/oauth/device_authorization and POST /v1/oauth/token', async () => {
      const startPath = '/v1/oauth/device_authorization'
      const tokenPath = '/v1/oauth/token'
      const form = async (target: TestApp, path: string, fields: Record<string, string>) => {
        const init = {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(fields).toString(),
        }
        return call(target, 'POST', path, init)
      }
      const accepted = async (path: string, fields: Record<string, string>) => {
        await checkRequestBody('POST', path, 'application/x-www-form-urlencoded', fields)
        return form(app, path, fields)
      }
      const oauthError = (body: unknown) => {
        const { code, error } = body as { code: string; error: string }
        return [code, error]
      }
      const started = await accepted(startPath, { client_id: 'tessera-cli' })
      expect(started.status).toBe(200)
      const { device_code, user_code } = started.body as { device_code: string; user_code: string }
      await checkRequestBody('POST', startPath, 'application/json', { client_id: 'tessera-cli' })
      expect(oauthError((await form(app, startPath, { client_id: 'nobody' })).body)).toEqual([
        'invalid_client',
        'invalid_client',
      ])
      expect(oauthError((await form(app, startPath, {})).body)).toEqual([
        'validation_failed',
        'invalid_request',
      ])

      const grant = {
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
        device_code,
        client_id: 'tessera-cli',
      }
      const answers: string[][] = []
      answers.push(oauthError((await accepted(tokenPath, grant)).body))
      answers.push(oauthError((await accepted(tokenPath, grant)).body))
      answers.push(oauthError((await form(app, tokenPath, { ...grant, client_id: 'nobody' })).body))
      answers.push(
        oauthError((await form(app, tokenPath, { ...grant, grant_type: 'password' })).body),
      )
      answers.push(oauthError((await form(app, tokenPath, { grant_type: grant.grant_type })).body))
      const denied = (await accepted(startPath, { client_id: 'tessera-cli' })).body as {
        device_code: string
        user_code: string
      }
      const { tokens } = await newUser()
      await denyAs(app.server.tessera, tokens.access_token, denied.user_code)
      answers.push(
        oauthError(
          (await form(app, tokenPath, { ...grant, device_code: denied.device_code })).body,
        ),
      )
      expect(answers).toEqual([
        ['authorization_pending', 'authorization_pending'],
        ['slow_down', 'slow_down'],
        ['invalid_client', 'invalid_client'],
        ['unsupported_grant_type', 'unsupported_grant_type'],
        ['validation_failed', 'invalid_request'],
        ['access_denied', 'access_denied'],
      ])
      await approveAs(app.server.tessera, tokens.access_token, user_code)
      expect((await accepted(tokenPath, grant)).status).toBe(200)
      expect(oauthError((await form(app, tokenPath, grant)).body)).toEqual([
        'invalid_grant',
        'invalid_grant',
      ])
      const expiring = (await accepted(startPath, { client_id: 'tessera-cli' })).body as {
        device_code: string
      }
      app.clock.advance(600_000)
      const expired = await form(app, tokenPath, { ...grant, device_code: expiring.device_code })
      app.clock.advance(-600_000)
      expect(oauthError(expired.body)).toEqual(['expired_token', 'expired_token'])

      for (const path of [startPath, tokenPath]) {
        const tooLarge = await call(app, 'POST', path, {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `client_id=${'x'.repeat(MAX_BODY_BYTES)}`,
        })
        expect(oauthError(tooLarge.body)).toEqual(['payload_too_large', 'invalid_request'])
        const wrongType = await call(app, 'POST', path, {
          headers: { 'content-type': 'text/plain' },
          body: 'client_id=tessera-cli',
        })
        expect(oauthError(wrongType.body)).toEqual(['unsupported_media_type', 'invalid_request'])
      }
      // RATE_LIMIT_OAUTH_PER_IP=1 on `strict`.
      expect((await form(strict, startPath, { client_id: 'tessera-cli' })).status).toBe(200)
      const limited = await form(strict, startPath, { client_id: 'tessera-cli' })
      expect([limited.status, ...oauthError(limited.body)]).toEqual([
        429,
        'rate_limited',
        'temporarily_unavailable',
      ])
    })

    describe('the pages', () => {
      pagesContract()
    })

    it('GET /ready answers 503 service_unavailable when the database is gone', async () => {
      const broken = await makeTestApp()
      try {
        await broken.server.tessera.db.destroy()
        const res = await call(broken, 'GET', '/ready')
        expect([res.status, problemCode(res.body)]).toEqual([503, 'service_unavailable'])
      } finally {
        await broken.close()
      }
    })
  })

  describe.skipIf(!POSTGRES)('the database unreachable [postgres]', () => {
    let database: TestDatabase
    let down: TestApp
    let proxy: Awaited<ReturnType<typeof cuttableProxy>>

    // biome-ignore lint/suspicious/noDuplicateTestHooks: this describe.skipIf block's own hook.
    beforeAll(async () => {
      database = await createTestDatabase('postgres')
      const url = new URL(database.url)
      proxy = await cuttableProxy({ hostname: url.hostname, port: Number(url.port || 5432) })
      url.port = String(proxy.port)
      down = await makeTestApp({
        dialect: 'postgres',
        env: {
          DATABASE_URL: url.toString(),
          SERVICE_SECRET: SECRET,
          DATABASE_CONNECT_TIMEOUT: '2',
        },
      })
    })
    // biome-ignore lint/suspicious/noDuplicateTestHooks: this describe.skipIf block's own hook.
    afterAll(async () => {
      await down?.close()
      await database?.drop()
    })

    it('every operation needing the database answers 503 with Retry-After', async () => {
      // service_unavailable.
      const { email, id, tokens } = await newUser(down)
      await proxy.cut()
      // Past the public-key cache, so verifying a token needs the database too.
      down.clock.advance(61_000)
      const bearer = { token: tokens.access_token }
      const secret = { headers: { 'x-service-secret': SECRET } }
      const credentials = { email, password: PASSWORD }
      const requests: [string, string, Init, string?][] = [
        ['GET', '/ready', {}],
        ['GET', '/v1/keys', {}],
        ['GET', '/v1/revocations', {}],
        [
          'POST',
          '/v1/user/auth/register',
          { json: { email: uniqueEmail('contract'), password: PASSWORD } },
        ],
        [
          'POST',
          '/v1/user/auth/register-service',
          { ...secret, json: { email: uniqueEmail('svc'), password: PASSWORD } },
        ],
        ['POST', '/v1/user/auth/login', { json: credentials }],
        ['POST', '/v1/user/auth/password/forgot', { json: { email } }],
        [
          'POST',
          '/v1/user/auth/password/reset',
          { json: { token: `tessera_pr_${'A'.repeat(43)}`, new_password: `${PASSWORD}!` } },
        ],
        ['POST', '/v1/user/auth/refresh', { json: { refresh_token: tokens.refresh_token } }],
        ['POST', '/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } }],
        ['POST', '/v1/user/auth/logout-all', bearer],
        ['POST', '/v1/user/auth/reauthenticate', { ...bearer, json: { password: PASSWORD } }],
        [
          'POST',
          '/v1/user/auth/mfa',
          { json: { mfa_ticket: `tessera_mt_${'A'.repeat(43)}`, totp_code: '123456' } },
        ],
        ['GET', '/v1/user/mfa', bearer],
        ['POST', '/v1/user/mfa/totp', bearer],
        ['DELETE', '/v1/user/mfa/totp', bearer],
        ['POST', '/v1/user/mfa/totp/confirm', { ...bearer, json: { code: '123456' } }],
        ['POST', '/v1/user/mfa/recovery-codes', bearer],
        ['POST', '/v1/user/mfa/step-up', { ...bearer, json: { totp_code: '123456' } }],
        [
          'POST',
          '/v1/user/auth/mfa/webauthn-options',
          { json: { mfa_ticket: `tessera_mt_${'A'.repeat(43)}` } },
        ],
        ['POST', '/v1/user/mfa/step-up/webauthn-options', bearer],
        [
          'POST',
          `/v1/admin/users/${id}/mfa/reset`,
          { ...bearer, json: { reason: 'down' } },
          '/v1/admin/users/{id}/mfa/reset',
        ],
        ['GET', '/v1/user/me', bearer],
        ['PATCH', '/v1/user/me', { ...bearer, method: 'PATCH', json: { display_name: 'Ada' } }],
        [
          'POST',
          '/v1/user/password',
          { ...bearer, json: { current_password: PASSWORD, new_password: `${PASSWORD}!` } },
        ],
        ['GET', '/v1/user/sessions', bearer],
        ['DELETE', `/v1/user/sessions/${UNKNOWN_ID}`, bearer, '/v1/user/sessions/{id}'],
        ['GET', '/v1/user/tokens', bearer],
        ['POST', '/v1/user/tokens', { ...bearer, json: { name: 'down' } }],
        ['DELETE', '/v1/user/tokens', bearer],
        ['DELETE', `/v1/user/tokens/${UNKNOWN_ID}`, bearer, '/v1/user/tokens/{id}'],
        ['POST', '/v1/user/passkeys/registration-options', bearer],
        ['GET', '/v1/user/passkeys', bearer],
        [
          'POST',
          '/v1/user/passkeys',
          {
            ...bearer,
            json: {
              name: 'down',
              challenge: `tessera_wc_${'A'.repeat(43)}`,
              response: new SoftwareAuthenticator('http://localhost:8000').register({
                challenge: 'AAAA',
                rp: { id: 'localhost' },
                user: { id: 'AAAA' },
              }),
            },
          },
        ],
        ['DELETE', `/v1/user/passkeys/${UNKNOWN_ID}`, bearer, '/v1/user/passkeys/{id}'],
        ['POST', '/v1/user/auth/passkey/options', {}],
        [
          'POST',
          '/v1/user/auth/passkey',
          {
            json: {
              challenge: `tessera_wc_${'A'.repeat(43)}`,
              response: new SoftwareAuthenticator('http://localhost:8000').assert({
                challenge: 'AAAA',
                rpId: 'localhost',
              }),
            },
          },
        ],
        [
          'GET',
          '/v1/user/authenticate/github/callback?code=x&state=y',
          {},
          '/v1/user/authenticate/{provider}/callback',
        ],
        ['POST', '/v1/user/auth/oauth/exchange', { json: { code: 'x' } }],
        ['DELETE', '/v1/user/identities/github', bearer, '/v1/user/identities/{provider}'],
        [
          'POST',
          '/v1/user/identities/github/link-url',
          bearer,
          '/v1/user/identities/{provider}/link-url',
        ],
        ['GET', `/link/tessera_lt_${'A'.repeat(43)}`, {}, '/link/{ticket}'],
        ['POST', `/v1/admin/users/${id}/promote`, bearer, '/v1/admin/users/{id}/promote'],
        ['GET', '/v1/admin/users', bearer],
        ['GET', `/v1/admin/users/${id}`, bearer, '/v1/admin/users/{id}'],
        ['DELETE', `/v1/admin/users/${id}`, bearer, '/v1/admin/users/{id}'],
        ...['disable', 'enable', 'sessions/revoke', 'password-reset'].map(
          (suffix): [string, string, Init, string] => [
            'POST',
            `/v1/admin/users/${id}/${suffix}`,
            { ...bearer, json: { reason: 'down' } },
            `/v1/admin/users/{id}/${suffix}`,
          ],
        ),
        [
          'POST',
          `/v1/admin/users/${id}/account-type`,
          { ...bearer, json: { account_type: 'regular', reason: 'down' } },
          '/v1/admin/users/{id}/account-type',
        ],
        [
          'POST',
          `/v1/admin/users/${id}/verification`,
          { ...bearer, json: { verified: true, reason: 'down' } },
          '/v1/admin/users/{id}/verification',
        ],
        ['DELETE', '/v1/user/me', bearer],
        ['GET', '/v1/admin/audit', bearer],
        ['POST', '/v1/token/introspect', { ...secret, json: { token: tokens.access_token } }],
        ['GET', '/v1/authz', bearer],
        [
          'GET',
          `/v1/service/users/${id}`,
          { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } },
          '/v1/service/users/{id}',
        ],
        [
          'POST',
          '/api/v1/auth/register',
          { json: { email: uniqueEmail('archive'), password: PASSWORD } },
        ],
        ['POST', '/api/v1/auth/login', { json: credentials }],
        ['POST', '/v1/user/email/verify/send', { json: { email } }],
        ['POST', '/v1/user/email/verify', { json: { token: `tessera_ev_${'A'.repeat(43)}` } }],
        [
          'POST',
          '/v1/user/email/change',
          { ...bearer, json: { email: uniqueEmail('down'), current_password: PASSWORD } },
        ],
        [
          'POST',
          '/v1/user/email/change/confirm',
          { json: { token: `tessera_ec_${'A'.repeat(43)}` } },
        ],
        [
          'POST',
          '/v1/user/email/change/cancel',
          { json: { token: `tessera_ex_${'A'.repeat(43)}` } },
        ],
        ['POST', '/v1/oauth/device_authorization', { json: { client_id: 'tessera-cli' } }],
        [
          'POST',
          '/v1/oauth/token',
          {
            json: {
              grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
              device_code: `tessera_dc_${'A'.repeat(43)}`,
              client_id: 'tessera-cli',
            },
          },
        ],
        // The pages: a session cookie to look up, and a form from Tessera's own origin.
        ...PAGE_ROUTES.map(([method, path, template]): [string, string, Init, string?] => [
          method,
          path,
          {
            headers: {
              cookie: `tessera_session=tessera_bs_${'A'.repeat(43)}`,
              ...(method === 'POST'
                ? {
                    origin: 'http://localhost:8000',
                    'content-type': 'application/x-www-form-urlencoded',
                  }
                : {}),
            },
            ...(method === 'POST' ? { body: 'csrf=x' } : {}),
          },
          template,
        ]),
      ]
      const answers: string[] = []
      for (const [method, path, init, template] of requests) {
        const answered = await call(down, method, path, init, template)
        answers.push(
          `${method} ${path} ${answered.status} ${problemCode(answered.body)} ` +
            `${answered.res.headers.get('retry-after')}`,
        )
      }
      expect(answers).toEqual(
        requests.map(([method, path]) => `${method} ${path} 503 service_unavailable 5`),
      )
    })
  })

  it('every documented operation and every documented status (but 500) was exercised', async () => {
    const missing: string[] = []
    for (const { method, path, statuses } of await documentedOperations()) {
      for (const status of statuses) {
        if (NOT_PROVOKED.has(status)) continue
        if (!POSTGRES && status === '503' && !openApiCoverage.has(`${method} ${path} ${status}`))
          continue
        if (!openApiCoverage.has(`${method} ${path} ${status}`))
          missing.push(`${method} ${path} ${status}`)
      }
    }
    expect(missing).toEqual([])
  })
})
