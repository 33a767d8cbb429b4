/**
 * Transport and input rules (docs/security.md, "Input"; openapi.yaml, "Conventions"): body
 * limit, content type, JSON shape, prototype pollution, problem+json for unknown routes, security
 * headers and caching on every response, and no secrets or internals in errors.
 */
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_BODY_BYTES } from '../../src/http/app.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import {
  expectProblem,
  PASSWORD,
  refresh,
  registerAndLogin,
  uniqueEmail,
} from '../support/users.js'

// Every test here sends many requests from one address; rate limits are tested elsewhere.
const ENV = {
  RATE_LIMIT_REGISTER_PER_IP: '0',
  RATE_LIMIT_LOGIN_PER_IP: '0',
  RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
}

const REGISTER = '/v1/user/auth/register'
const LOGIN = '/v1/user/auth/login'

/** A JSON registration body of exactly `size` bytes (the email padded to fit). */
function registrationOfSize(size: number): string {
  const empty = JSON.stringify({ email: '', password: PASSWORD })
  return JSON.stringify({ email: 'a'.repeat(size - empty.length), password: PASSWORD })
}

interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/**
 * POSTs `chunks` with `Transfer-Encoding: chunked` (no Content-Length), one write per chunk. The
 * server may answer before the last chunk is written and drop the connection: write errors after
 * the response has arrived are expected and ignored.
 */
function postChunked(app: TestApp, path: string, chunks: Buffer[]): Promise<RawResponse> {
  const url = new URL(app.url)
  return new Promise((resolve, reject) => {
    let answered = false
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      },
      (res) => {
        answered = true
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        res.on('error', reject)
      },
    )
    req.on('error', (error) => {
      if (!answered) reject(error)
    })
    const writeNext = (i: number) => {
      if (answered || i === chunks.length) {
        req.end()
        return
      }
      req.write(chunks[i], () => setImmediate(() => writeNext(i + 1)))
    }
    writeNext(0)
  })
}

function problemOf(raw: RawResponse) {
  expect(raw.headers['content-type']).toBe('application/problem+json')
  return JSON.parse(raw.body) as { code: string; status: number }
}

function expectSecurityHeaders(res: Response, what: string) {
  expect(res.headers.get('x-content-type-options'), what).toBe('nosniff')
  expect(res.headers.get('x-frame-options'), what).toBe('DENY')
  expect(res.headers.get('content-security-policy'), what).toContain("default-src 'none'")
  expect(res.headers.get('referrer-policy'), what).toBe('no-referrer')
  expect(res.headers.get('x-request-id'), what).toMatch(/^\S+$/)
}

describe('HTTP errors and transport rules [sqlite]', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp({ dialect: 'sqlite', env: ENV })
  })
  afterAll(() => app.close())

  describe('body limit (64 KiB)', () => {
    it('a Content-Length body of exactly 64 KiB is read', async () => {
      // One byte more is 413 problem+json.
      const atLimit = registrationOfSize(MAX_BODY_BYTES)
      expect(Buffer.byteLength(atLimit)).toBe(64 * 1024)
      const ok = await app.request(REGISTER, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: atLimit,
      })
      // Read and validated (the padded email is too long), not refused for its size.
      const problem = await expectProblem(ok, 400, 'validation_failed')
      expect(problem.detail).toContain('email')

      const over = await app.request(REGISTER, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: registrationOfSize(MAX_BODY_BYTES + 1),
      })
      await expectProblem(over, 413, 'payload_too_large')
    })

    it('a chunked body (no Content-Length) over 64 KiB is 413 problem+json', async () => {
      const chunks = Array.from({ length: 10 }, () => Buffer.alloc(8 * 1024, 0x20))
      const raw = await postChunked(app, REGISTER, chunks)
      expect(raw.status, raw.body).toBe(413)
      expect(problemOf(raw).code).toBe('payload_too_large')
    })

    it('a chunked body under 64 KiB is read as usual', async () => {
      const email = uniqueEmail('chunked')
      const text = JSON.stringify({ email, password: PASSWORD })
      const third = Math.ceil(text.length / 3)
      const chunks = [0, 1, 2].map((i) => Buffer.from(text.slice(i * third, (i + 1) * third)))
      const raw = await postChunked(app, REGISTER, chunks)
      expect(raw.status, raw.body).toBe(201)
      expect((JSON.parse(raw.body) as { email: string }).email).toBe(email)
    })

    it('a streamed fetch body over 64 KiB is 413 problem+json', async () => {
      let sent = 0
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 80 * 1024) return controller.close()
          sent += 8 * 1024
          controller.enqueue(new Uint8Array(8 * 1024).fill(0x20))
        },
      })
      const res = await fetch(app.url + REGISTER, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      } as RequestInit & { duplex: 'half' })
      await expectProblem(res, 413, 'payload_too_large')
    })
  })

  describe('request bodies', () => {
    it('a body that is not application/json is 415 unsupported_media_type', async () => {
      const body = JSON.stringify({ email: uniqueEmail(), password: PASSWORD })
      const types = [
        ['text/plain', body],
        ['text/plain;charset=utf-8', body],
        [
          'application/x-www-form-urlencoded',
          `email=${encodeURIComponent(uniqueEmail())}&password=${PASSWORD}`,
        ],
        [
          'multipart/form-data; boundary=x',
          `--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.c\r\n--x--`,
        ],
        ['application/jsonp', body],
        ['application/xml', '<email/>'],
      ]
      for (const [type, payload] of types) {
        const res = await app.request(REGISTER, {
          method: 'POST',
          headers: { 'content-type': type! },
          body: payload,
        })
        await expectProblem(res, 415, 'unsupported_media_type')
      }
      // No content type at all.
      const bare = await app.request(REGISTER, {
        method: 'POST',
        body: new Uint8Array(Buffer.from(body)),
      })
      await expectProblem(bare, 415, 'unsupported_media_type')
    })

    it('malformed JSON is 400 validation_failed', async () => {
      const bodies = [
        '',
        '{',
        '{"email": "a@b.c",}',
        "{'email': 'a@b.c'}",
        '{email: 1}',
        'undefined',
        '{"a":1}{"b":2}',
      ]
      for (const body of bodies) {
        const res = await app.request(REGISTER, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        })
        await expectProblem(res, 400, 'validation_failed')
      }
    })

    it('JSON that is not an object is 400 validation_failed', async () => {
      for (const body of ['[]', '[{"email":"a@b.c"}]', '"a string"', 'null', '42', 'true']) {
        const res = await app.request(REGISTER, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        })
        await expectProblem(res, 400, 'validation_failed')
      }
    })

    it('a missing or wrongly typed field is 400 with errors[].field naming it', async () => {
      const email = uniqueEmail()
      const cases: [path: string, body: unknown, field: string][] = [
        [REGISTER, { password: PASSWORD }, 'email'],
        [REGISTER, { email: 42, password: PASSWORD }, 'email'],
        [REGISTER, { email: ['a@b.c'], password: PASSWORD }, 'email'],
        [REGISTER, { email: 'not an email', password: PASSWORD }, 'email'],
        [REGISTER, { email }, 'password'],
        [REGISTER, { email, password: 12345678 }, 'password'],
        [REGISTER, { email, password: { value: PASSWORD } }, 'password'],
        [REGISTER, { email, password: PASSWORD, display_name: 5 }, 'display_name'],
        [LOGIN, { email: true, password: PASSWORD }, 'email'],
        [LOGIN, { email, password: null }, 'password'],
        ['/v1/user/auth/refresh', { refresh_token: 1 }, 'refresh_token'],
        ['/v1/user/auth/logout', { refresh_token: [] }, 'refresh_token'],
      ]
      for (const [path, body, field] of cases) {
        const res = await app.request(path, { json: body })
        const problem = (await expectProblem(res, 400, 'validation_failed')) as unknown as {
          errors?: { field: string; message: string }[]
        }
        expect(
          problem.errors?.map((e) => e.field),
          `${path} ${JSON.stringify(body)}`,
        ).toContain(field)
      }
    })

    it('prototype-polluting keys are inert', async () => {
      // Registration makes a regular account and Object.prototype is untouched.
      // Raw JSON text: an object literal would not keep `__proto__` as a key.
      const credentials = (email: string) => `"email": "${email}", "password": "${PASSWORD}"`
      const bodies = [
        (email: string) => `{"__proto__": {"account_type": "superuser"}, ${credentials(email)}}`,
        (email: string) =>
          `{"constructor": {"prototype": {"account_type": "superuser"}}, ${credentials(email)}}`,
        (email: string) =>
          `{"account_type": "superuser", "verified": true, "role": "admin", ${credentials(email)}}`,
      ]
      for (const body of bodies) {
        const email = uniqueEmail('proto')
        const res = await app.request(REGISTER, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: body(email),
        })
        expect(res.status, await res.clone().text()).toBe(201)
        const user = (await res.json()) as Record<string, unknown>
        expect(user.account_type).toBe('regular')
        expect(user.verified).toBe(false)
        expect(user).not.toHaveProperty('role')
        // The server runs in this process: its Object.prototype is ours.
        expect(({} as Record<string, unknown>).account_type).toBeUndefined()
        expect(Object.prototype).not.toHaveProperty('account_type')
        // And the token says the same.
        const login = await app.request(LOGIN, { json: { email, password: PASSWORD } })
        const { access_token } = (await login.json()) as { access_token: string }
        const me = await app.request('/v1/user/me', { token: access_token })
        expect(((await me.json()) as { account_type: string }).account_type).toBe('regular')
      }
    })
  })

  describe('routing', () => {
    it('an unknown route is 404 problem+json not_found', async () => {
      const requests: [string, string][] = [
        ['GET', '/nope'],
        ['GET', '/v1/user/nope'],
        ['POST', '/v1/nope'],
        ['GET', '/v1/keys/extra'],
        ['DELETE', '/v1/user/sessions'],
      ]
      for (const [method, path] of requests) {
        const res = await app.request(path, { method })
        await expectProblem(res, 404, 'not_found')
      }
    })

    it('a wrong method on a known path is problem+json 404 or 405', async () => {
      const requests: [string, string][] = [
        ['GET', LOGIN],
        ['PUT', '/v1/keys'],
        ['PUT', '/v1/user/me'],
        ['POST', '/health'],
      ]
      for (const [method, path] of requests) {
        const res = await app.request(path, { method })
        expect([404, 405], `${method} ${path}`).toContain(res.status)
        expect(res.headers.get('content-type')).toBe('application/problem+json')
        const body = (await res.json()) as { code: string; status: number }
        expect(['not_found', 'method_not_allowed']).toContain(body.code)
        expect(body.status).toBe(res.status)
      }
    })
  })

  describe('headers', () => {
    it('every response carries the security headers and an x-request-id', async () => {
      const { tokens } = await registerAndLogin(app)
      const requests: [string, () => Promise<Response>][] = [
        ['200 health', () => app.request('/health')],
        ['200 keys', () => app.request('/v1/keys')],
        ['200 me', () => app.request('/v1/user/me', { token: tokens.access_token })],
        [
          '201 register',
          () => app.request(REGISTER, { json: { email: uniqueEmail(), password: PASSWORD } }),
        ],
        [
          '204 logout',
          () => app.request('/v1/user/auth/logout', { json: { refresh_token: 'tessera_rt_x' } }),
        ],
        ['400 validation', () => app.request(REGISTER, { json: {} })],
        ['401 no token', () => app.request('/v1/user/me')],
        ['401 bad token', () => app.request('/v1/user/me', { token: 'v4.public.AAAA.BBBB' })],
        ['404 unknown route', () => app.request('/nope')],
        [
          '413 too large',
          () =>
            app.request(REGISTER, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: registrationOfSize(MAX_BODY_BYTES + 1),
            }),
        ],
        [
          '415 media type',
          () =>
            app.request(REGISTER, {
              method: 'POST',
              headers: { 'content-type': 'text/plain' },
              body: '{}',
            }),
        ],
      ]
      for (const [what, send] of requests) {
        const res = await send()
        expect(res.status, what).toBe(Number(what.slice(0, 3)))
        expectSecurityHeaders(res, what)
      }
    })

    it('x-request-id is unique per request', async () => {
      const ids = await Promise.all(
        Array.from({ length: 5 }, async () =>
          (await app.request('/health')).headers.get('x-request-id'),
        ),
      )
      expect(new Set(ids).size).toBe(5)
    })

    it('token responses (login, refresh) carry Cache-Control: no-store', async () => {
      const { tokens, email } = await registerAndLogin(app)
      const login = await app.request(LOGIN, { json: { email, password: PASSWORD } })
      expect(login.status).toBe(200)
      expect(login.headers.get('cache-control')).toBe('no-store')
      const refreshed = await refresh(app, tokens.refresh_token)
      expect(refreshed.status).toBe(200)
      expect(refreshed.headers.get('cache-control')).toBe('no-store')
    })
  })

  describe('no secrets in errors', () => {
    it('a submitted password never appears in an error response', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const secret = () => `Zq${randomBytes(12).toString('hex')}`
      const cases: [
        what: string,
        send: (password: string) => Promise<Response>,
        password: string,
      ][] = [
        ['wrong password', (p) => app.request(LOGIN, { json: { email, password: p } }), secret()],
        [
          'unknown email',
          (p) => app.request(LOGIN, { json: { email: uniqueEmail('nobody'), password: p } }),
          secret(),
        ],
        [
          'common password',
          (p) => app.request(REGISTER, { json: { email: uniqueEmail(), password: p } }),
          'password123',
        ],
        [
          'too short',
          (p) => app.request(REGISTER, { json: { email: uniqueEmail(), password: p } }),
          'Zq9#xv',
        ],
        [
          'too long',
          (p) => app.request(REGISTER, { json: { email: uniqueEmail(), password: p } }),
          secret().repeat(50),
        ],
        [
          'bad email beside it',
          (p) => app.request(REGISTER, { json: { email: 'nope', password: p } }),
          secret(),
        ],
        [
          'wrong current password',
          (p) =>
            app.request('/v1/user/password', {
              token: tokens.access_token,
              json: { current_password: p, new_password: secret() },
            }),
          secret(),
        ],
      ]
      for (const [what, send, password] of cases) {
        const res = await send(password)
        expect(res.status, what).toBeGreaterThanOrEqual(400)
        const text = await res.text()
        const headers = [...res.headers.values()].join('\n')
        // The random ones are long enough that a fragment of them would be telling too.
        const needles =
          password.startsWith('Zq') && password.length >= 12
            ? [password, password.slice(0, 8)]
            : [password]
        for (const needle of needles) {
          expect(text, what).not.toContain(needle)
          expect(headers, what).not.toContain(needle)
        }
      }
    })
  })
})

describe('an internal error [sqlite]', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp({ dialect: 'sqlite', env: ENV })
  })
  afterAll(() => app.close())

  it('is 500 problem+json internal_error that names nothing internal', async () => {
    // Make the database fail under the app: the users table disappears.
    await sql`alter table users rename to users_gone`.execute(app.server.tessera.db)
    const res = await app.request(REGISTER, { json: { email: uniqueEmail(), password: PASSWORD } })
    const text = await res.clone().text()
    const problem = await expectProblem(res, 500, 'internal_error')
    for (const leak of [
      'users',
      'sqlite',
      'SqliteError',
      'no such table',
      'insert',
      'node_modules',
      '/src/',
      '    at ',
    ]) {
      expect(text.toLowerCase(), leak).not.toContain(leak.toLowerCase())
    }
    expect(Object.keys(problem).sort()).toEqual(['code', 'detail', 'status', 'title', 'type'])
    expectSecurityHeaders(res, '500')
  })
})
