/**
 * The logs of the real server (real HTTP, real SQLite), captured from a pino logger writing to
 * memory: every line is JSON with a request id, and no line holds a password, a token or a secret.
 * The logger is built without Tessera's redaction list on purpose: the code must never hand a
 * credential to the logger in the first place (redaction is only a second line of defence).
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { approveAs } from '../support/device.js'
import { PASSWORD, type TokenPairBody, uniqueEmail } from '../support/users.js'

const SERVICE_SECRET = 'logs-test-service-secret-0123456789'
const KEY_ENCRYPTION_KEY = 'logs-test-key-encryption-key-0123456789abcdef'
const METRICS_TOKEN = 'logs-test-metrics-token-0123456789'
const WRONG_PASSWORD = 'definitely-the-wrong-passphrase-91'
const NEW_PASSWORD = 'another-fine-passphrase-for-logs-7'
const CLIENT_REQUEST_ID = 'client-chosen-request-id-42'

describe('structured request logs', () => {
  const lines: string[] = []
  let database: TestDatabase
  let server: RunningServer
  /** Every response's X-Request-Id. */
  const requestIds: string[] = []
  /** Lines written while the server started, before any request. */
  let startupLines = 0
  /** Every credential the test handled: none may show up in a log line. */
  const secrets = new Set<string>([
    PASSWORD,
    WRONG_PASSWORD,
    NEW_PASSWORD,
    SERVICE_SECRET,
    KEY_ENCRYPTION_KEY,
    METRICS_TOKEN,
  ])

  async function request(
    path: string,
    init: RequestInit & { json?: unknown; token?: string } = {},
  ) {
    const { json, token, ...rest } = init
    const headers = new Headers(rest.headers)
    if (json !== undefined) headers.set('content-type', 'application/json')
    if (token !== undefined) headers.set('authorization', `Bearer ${token}`)
    const res = await fetch(server.url + path, {
      ...rest,
      headers,
      ...(json === undefined ? {} : { body: JSON.stringify(json), method: rest.method ?? 'POST' }),
    })
    requestIds.push(res.headers.get('x-request-id') ?? '')
    return res
  }

  async function tokenPair(res: Response): Promise<TokenPairBody> {
    expect(res.status).toBe(200)
    const pair = (await res.json()) as TokenPairBody
    secrets.add(pair.access_token)
    secrets.add(pair.refresh_token)
    return pair
  }

  beforeAll(async () => {
    database = await createTestDatabase('sqlite')
    const config = loadConfig({
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: database.url,
      SERVICE_SECRET,
      KEY_ENCRYPTION_KEY,
      METRICS_TOKEN,
      ARGON2_MEMORY_KIB: '7168',
      ARGON2_TIME_COST: '1',
    })
    // The most verbose level, so that nothing any code logs escapes the check.
    const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) })
    server = await startServer(config, { logger })
    // What the start logs (the mail outbox's warning, README "Mail") precedes every request.
    startupLines = lines.length

    const email = uniqueEmail('logs')
    expect(
      (
        await request('/v1/user/auth/register', {
          json: { email, password: PASSWORD, display_name: 'Ada' },
        })
      ).status,
    ).toBe(201)
    // A weak password is refused without being echoed anywhere.
    expect(
      (await request('/v1/user/auth/register', { json: { email: uniqueEmail(), password: 'zq' } }))
        .status,
    ).toBe(400)
    const serviceEmail = uniqueEmail('svc')
    expect(
      (
        await request('/v1/user/auth/register-service', {
          json: { email: serviceEmail, password: PASSWORD },
          headers: { 'x-service-secret': SERVICE_SECRET },
        })
      ).status,
    ).toBe(201)
    expect(
      (
        await request('/v1/user/auth/register-service', {
          json: { email: uniqueEmail('svc'), password: PASSWORD },
          headers: { 'x-service-secret': `${SERVICE_SECRET}-wrong` },
        })
      ).status,
    ).toBe(403)

    const first = await tokenPair(
      await request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
    )
    expect(
      (await request('/v1/user/auth/login', { json: { email, password: WRONG_PASSWORD } })).status,
    ).toBe(401)
    expect(
      (await request('/api/v1/auth/login', { json: { email, password: WRONG_PASSWORD } })).status,
    ).toBe(401)

    const second = await tokenPair(
      await request('/v1/user/auth/refresh', { json: { refresh_token: first.refresh_token } }),
    )
    // Inside the reuse interval the spent token answers its kept (sealed) pair again.
    expect(
      (await request('/v1/user/auth/refresh', { json: { refresh_token: first.refresh_token } }))
        .status,
    ).toBe(200)
    const third = await tokenPair(
      await request('/v1/user/auth/refresh', { json: { refresh_token: second.refresh_token } }),
    )
    // Reuse of a spent token whose child was used revokes the family.
    expect(
      (await request('/v1/user/auth/refresh', { json: { refresh_token: first.refresh_token } }))
        .status,
    ).toBe(401)
    expect(
      (await request('/v1/user/auth/refresh', { json: { refresh_token: third.refresh_token } }))
        .status,
    ).toBe(401)

    const current = await tokenPair(
      await request('/api/v1/auth/login', { json: { email, password: PASSWORD } }),
    )
    const service = await tokenPair(
      await request('/v1/user/auth/login', { json: { email: serviceEmail, password: PASSWORD } }),
    )
    expect((await request('/v1/user/me', { token: current.access_token })).status).toBe(200)
    expect((await request('/v1/user/me', { token: first.access_token })).status).toBe(401)
    expect((await request('/v1/authz', { token: current.access_token })).status).toBe(200)
    // A token in a query string: the log keeps the path only.
    expect(
      (await request(`/v1/authz?access_token=${encodeURIComponent(current.access_token)}`)).status,
    ).toBe(401)

    const introspect = (token: string, headers: Record<string, string>) =>
      request('/v1/token/introspect', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ token }).toString(),
      })
    expect(
      (await introspect(current.access_token, { 'x-service-secret': SERVICE_SECRET })).status,
    ).toBe(200)
    expect(
      (await introspect(current.refresh_token, { authorization: `Bearer ${service.access_token}` }))
        .status,
    ).toBe(200)
    expect(
      (
        await introspect(current.access_token, {
          'x-service-secret': 'not-the-service-secret-0000',
        })
      ).status,
    ).toBe(401)

    expect(
      (
        await request('/v1/user/password', {
          token: current.access_token,
          json: { current_password: PASSWORD, new_password: NEW_PASSWORD },
        })
      ).status,
    ).toBe(204)
    expect((await request('/metrics', { token: METRICS_TOKEN })).status).toBe(200)
    expect((await request('/metrics', { token: 'wrong-metrics-token-0123456789' })).status).toBe(
      401,
    )
    // A device login: neither code, nor the pair it ends with, reaches a log line.
    const form = (path: string, fields: Record<string, string>) =>
      request(path, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
      })
    const device = (await (
      await form('/v1/oauth/device_authorization', { client_id: 'tessera-cli' })
    ).json()) as { device_code: string; user_code: string }
    secrets.add(device.device_code)
    secrets.add(device.user_code)
    secrets.add(device.user_code.replace('-', ''))
    const grant = {
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: device.device_code,
      client_id: 'tessera-cli',
    }
    expect((await form('/v1/oauth/token', grant)).status).toBe(400)
    await approveAs(server.tessera, current.access_token, device.user_code)
    await tokenPair(await form('/v1/oauth/token', grant))
    expect((await form('/v1/oauth/token', grant)).status).toBe(400)
    expect(
      (await request('/v1/user/auth/logout', { json: { refresh_token: current.refresh_token } }))
        .status,
    ).toBe(204)
    expect(
      (await request('/no/such/route', { headers: { 'x-request-id': CLIENT_REQUEST_ID } })).status,
    ).toBe(404)
  })

  afterAll(async () => {
    await server?.close()
    await database?.drop()
  })

  const parsed = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>)

  it('writes one JSON line per request, each with a request id', () => {
    expect(lines.length - startupLines).toBeGreaterThanOrEqual(requestIds.length)
    for (const line of lines.slice(startupLines)) {
      expect(line.endsWith('\n'), line).toBe(true)
      const entry = JSON.parse(line) as Record<string, unknown>
      expect(typeof entry.requestId, line).toBe('string')
      expect((entry.requestId as string).length, line).toBeGreaterThan(0)
      expect(typeof entry.level, line).toBe('number')
      expect(typeof entry.time, line).toBe('number')
    }
    const logged = parsed().map((e) => e.requestId)
    for (const id of requestIds) {
      expect(id).not.toBe('')
      expect(logged).toContain(id)
    }
    // A client's own X-Request-Id is carried through, so its logs and ours can be joined.
    expect(logged).toContain(CLIENT_REQUEST_ID)
  })

  it('request lines carry method, path, route template, status and duration', () => {
    const requests = parsed().filter((e) => e.path !== undefined)
    expect(requests).toHaveLength(requestIds.length)
    const login = requests.find((e) => e.path === '/v1/user/auth/login' && e.status === 401)
    expect(login).toMatchObject({ method: 'POST', route: '/v1/user/auth/login', status: 401 })
    expect(typeof login!.ms).toBe('number')
    const authz = requests.filter((e) => e.path === '/v1/authz')
    expect(authz.map((e) => e.status).sort()).toEqual([200, 401])
    expect(requests.find((e) => e.path === '/no/such/route')).toMatchObject({
      route: '/*',
      status: 404,
    })
  })

  it('never logs a password, a token or a secret', () => {
    // Three passwords, three secrets, six token pairs and a device login's codes (the user code
    // as shown and as typed).
    expect(secrets.size).toBe(21)
    for (const line of lines) {
      for (const secret of secrets)
        expect(line.includes(secret), `a credential in: ${line}`).toBe(false)
      // Nor any recognisable piece of one.
      expect(line).not.toMatch(/v4\.public\.|tessera_(rt|dc)_[A-Za-z0-9_-]{8}/)
    }
  })
})
