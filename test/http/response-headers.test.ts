/**
 * The response header block (src/http/middleware/response-headers.ts): every header of it on every
 * response, whoever built the response (a handler, the error and not-found handlers, the body
 * limit), a route's own value of a name instead of the block's (never both), and the request id.
 * Header logic: SQLite only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RESPONSE_HEADER_BLOCK } from '../../src/http/middleware/response-headers.js'
import { makeTestApp, type TestApp } from '../support/app.js'

function expectBlock(res: Response, what: string, except: string[] = []) {
  for (const [name, value] of Object.entries(RESPONSE_HEADER_BLOCK)) {
    if (except.includes(name)) continue
    expect(res.headers.get(name), `${what}: ${name}`).toBe(value)
  }
  expect(res.headers.get('x-request-id'), what).toMatch(/^[\w\-=]+$/)
}

describe('the response header block [sqlite]', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp({ dialect: 'sqlite' })
  })
  afterAll(() => app.close())

  it('is on a handler answer, a 404, a handler problem and a 413 from the body limit', async () => {
    const health = await app.request('/health')
    expect(health.status).toBe(200)
    expectBlock(health, 'GET /health')

    const missing = await app.request('/no/such/route')
    expect(missing.status).toBe(404)
    expectBlock(missing, 'no route')

    const unauthorized = await app.request('/v1/user/me')
    expect(unauthorized.status).toBe(401)
    expectBlock(unauthorized, 'a problem of a handler')

    const tooLarge = await app.request('/v1/user/auth/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ padding: 'x'.repeat(70 * 1024) }),
    })
    expect(tooLarge.status).toBe(413)
    expectBlock(tooLarge, 'the body limit')
  })

  it("gives way to a route's own value of a header, which is sent once", async () => {
    const keys = await app.request('/v1/keys')
    expect(keys.status).toBe(200)
    // One value, the route's: not "no-store, public, ..." (a cache would honour no-store).
    expect(keys.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/)
    expectBlock(keys, 'GET /v1/keys', ['Cache-Control'])

    const docs = await app.request('/docs')
    expect(docs.status).toBe(200)
    const policy = docs.headers.get('content-security-policy')
    expect(policy).not.toBe(RESPONSE_HEADER_BLOCK['Content-Security-Policy'])
    expect(policy).not.toContain(',')
    expectBlock(docs, 'GET /docs', ['Content-Security-Policy', 'Cache-Control'])
  })

  it("carries a client's plain request id through and replaces any other", async () => {
    const given = await app.request('/health', { headers: { 'x-request-id': 'client-id-42' } })
    expect(given.headers.get('x-request-id')).toBe('client-id-42')
    for (const bad of ['has space', 'x'.repeat(129), 'semi;colon']) {
      const res = await app.request('/health', { headers: { 'x-request-id': bad } })
      expect(res.headers.get('x-request-id'), bad).toMatch(/^[0-9a-f-]{36}$/)
    }
  })

  it('labels the latency metric by route template, whoever answered', async () => {
    await app.request('/v1/user/sessions/some-id', { method: 'DELETE' })
    await app.request('/health')
    const metrics = await (await app.request('/metrics')).text()
    const series = (labels: string) =>
      metrics.includes(`tessera_http_request_duration_seconds_count{${labels}}`)
    expect(series('method="DELETE",route="/v1/user/sessions/:id",status="401"')).toBe(true)
    expect(series('method="GET",route="/health",status="200"')).toBe(true)
  })
})
