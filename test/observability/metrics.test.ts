/**
 * GET /metrics: the counters move with what happened (logins by outcome, refreshes by outcome,
 * reuse detections, live sessions), request histograms are labelled with route templates (never a
 * raw path), each app has its own registry, and METRICS_TOKEN guards the endpoint when set.
 */
import { CompiledQuery } from 'kysely'
import { register as globalRegistry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { countLiveSessions, SESSIONS_LIVE_REFRESH_MS } from '../../src/metrics.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { federationEnv } from '../support/federation.js'
import {
  authorizeUrl,
  Browser,
  clientPkce,
  type FakeOidcProvider,
  startOidcProvider,
} from '../support/oidc.js'
import {
  login,
  PASSWORD,
  refresh,
  register,
  type TokenPairBody,
  uniqueEmail,
  uniqueSubject,
} from '../support/users.js'

const METRICS_TOKEN = 'metrics-test-token-0123456789abcdef'
const pkce = clientPkce()

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of a Prometheus text exposition (format 0.0.4). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return samples
}

/** The value of the one sample named `name` whose labels include `labels`. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1)
  return found[0]!.value
}

async function scrape(app: TestApp, token?: string) {
  const res = await app.request('/metrics', token === undefined ? {} : { token })
  const text = await res.text()
  expect(res.status, text).toBe(200)
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
  return { text, samples: parseExposition(text) }
}

for (const dialect of dialects()) {
  describe(`GET /metrics [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_LOGIN_PER_ACCOUNT: '2', RATE_LIMIT_LOGIN_PER_IP: '0' },
      })
    })
    afterAll(() => app?.close())

    it('starts with every outcome at 0 and no live session', async () => {
      const { samples } = await scrape(app)
      for (const outcome of ['ok', 'invalid_credentials', 'disabled', 'rate_limited']) {
        expect(sampleValue(samples, 'tessera_logins_total', { outcome })).toBe(0)
      }
      for (const outcome of ['rotated', 'replayed', 'invalid', 'reused']) {
        expect(sampleValue(samples, 'tessera_refreshes_total', { outcome })).toBe(0)
      }
      expect(sampleValue(samples, 'tessera_refresh_reuse_detected_total')).toBe(0)
      expect(sampleValue(samples, 'tessera_sessions_live')).toBe(0)
      expect(sampleValue(samples, 'tessera_argon2_active')).toBe(0)
      expect(sampleValue(samples, 'tessera_argon2_queued')).toBe(0)
      // Node's process metrics, in the same per-instance registry.
      expect(samples.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true)
      expect(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds')).toBe(true)
    })

    it('counts logins, refreshes, reuse and live sessions', async () => {
      // Labels requests by route template.
      const alice = await register(app)
      const bob = await register(app)
      const carol = await register(app)

      // ok: 3 logins (alice twice, bob once).
      const a1 = await login(app, alice.email)
      const a2 = await login(app, alice.email)
      await login(app, bob.email)

      // invalid_credentials: a wrong password, then an unknown address twice; its third attempt
      // is over the per-account limit of 2: rate_limited.
      const attempt = (email: string, password: string) =>
        app.request('/v1/user/auth/login', { json: { email, password } })
      expect((await attempt(alice.email, 'not the right password')).status).toBe(401)
      const ghost = uniqueEmail('ghost')
      expect((await attempt(ghost, PASSWORD)).status).toBe(401)
      expect((await attempt(ghost, PASSWORD)).status).toBe(401)
      expect((await attempt(ghost, PASSWORD)).status).toBe(429)
      // The sequence-archive login path counts too.
      expect(
        (
          await app.request('/api/v1/auth/login', {
            json: { email: bob.email, password: 'wrong again!' },
          })
        ).status,
      ).toBe(401)

      // disabled
      await setDisabled(app.server.tessera, carol.user.id, true)
      expect((await attempt(carol.email, PASSWORD)).status).toBe(403)

      // rotated, replayed inside the reuse interval, then reused after it (the family of a1 is
      // revoked), then invalid twice.
      const rotated = await refresh(app, a1.refresh_token)
      expect(rotated.status).toBe(200)
      expect((await refresh(app, a1.refresh_token)).status).toBe(200)
      app.clock.advance(10_000)
      expect((await refresh(app, a1.refresh_token)).status).toBe(401)
      expect((await refresh(app, 'tessera_rt_unknown')).status).toBe(401)
      const successor = (await rotated.json()) as TokenPairBody
      expect((await refresh(app, successor.refresh_token)).status).toBe(401)

      // A third session of alice's, deleted with a2's token: live sessions are a2 and bob's.
      const a3 = await login(app, alice.email)
      const listed = (await (
        await app.request('/v1/user/sessions', { token: a2.access_token })
      ).json()) as {
        sessions: Array<{ id: string; current: boolean }>
      }
      expect(listed.sessions).toHaveLength(2)
      const sid = listed.sessions.find((s) => !s.current)!.id
      expect(
        (
          await app.request(`/v1/user/sessions/${sid}`, {
            method: 'DELETE',
            token: a2.access_token,
          })
        ).status,
      ).toBe(204)
      expect((await app.request('/v1/user/me', { token: a3.access_token })).status).toBe(401)
      // Refused by the body limit before the handler runs: still the login route.
      const oversized = await app.request('/v1/user/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ padding: 'x'.repeat(70_000) }),
      })
      expect(oversized.status).toBe(413)
      const stray = `/no/such/route/${crypto.randomUUID()}`
      expect((await app.request(stray)).status).toBe(404)

      // Past the live-session count of the first scrape.
      app.clock.advance(SESSIONS_LIVE_REFRESH_MS)
      const { text, samples } = await scrape(app)
      expect(sampleValue(samples, 'tessera_logins_total', { outcome: 'ok' })).toBe(4)
      expect(sampleValue(samples, 'tessera_logins_total', { outcome: 'invalid_credentials' })).toBe(
        4,
      )
      expect(sampleValue(samples, 'tessera_logins_total', { outcome: 'rate_limited' })).toBe(1)
      expect(sampleValue(samples, 'tessera_logins_total', { outcome: 'disabled' })).toBe(1)
      expect(sampleValue(samples, 'tessera_refreshes_total', { outcome: 'rotated' })).toBe(1)
      expect(sampleValue(samples, 'tessera_refreshes_total', { outcome: 'replayed' })).toBe(1)
      expect(sampleValue(samples, 'tessera_refreshes_total', { outcome: 'reused' })).toBe(1)
      expect(sampleValue(samples, 'tessera_refreshes_total', { outcome: 'invalid' })).toBe(2)
      expect(sampleValue(samples, 'tessera_refresh_reuse_detected_total')).toBe(1)
      expect(sampleValue(samples, 'tessera_sessions_live')).toBe(2)

      // Requests by route template and status; the histogram's _count is the request count.
      const count = (method: string, route: string, status: string) =>
        sampleValue(samples, 'tessera_http_request_duration_seconds_count', {
          method,
          route,
          status,
        })
      expect(count('POST', '/v1/user/auth/login', '200')).toBe(4)
      expect(count('POST', '/v1/user/auth/login', '401')).toBe(3)
      expect(count('POST', '/v1/user/auth/login', '403')).toBe(1)
      expect(count('POST', '/v1/user/auth/login', '429')).toBe(1)
      expect(count('POST', '/v1/user/auth/login', '413')).toBe(1)
      expect(count('POST', '/api/v1/auth/login', '401')).toBe(1)
      expect(count('POST', '/v1/user/auth/refresh', '200')).toBe(2)
      expect(count('POST', '/v1/user/auth/refresh', '401')).toBe(3)
      expect(count('DELETE', '/v1/user/sessions/:id', '204')).toBe(1)
      // Refused by requireUser: still the handler's template.
      expect(count('GET', '/v1/user/me', '401')).toBe(1)
      // Nothing matched: one bounded label, not the path.
      expect(count('GET', '/*', '404')).toBe(1)
      expect(count('GET', '/metrics', '200')).toBe(1)
      const le = (bound: string) =>
        sampleValue(samples, 'tessera_http_request_duration_seconds_bucket', {
          method: 'POST',
          route: '/v1/user/auth/login',
          status: '200',
          le: bound,
        })
      expect(le('+Inf')).toBe(4)
      expect(le('0.0005')).toBeLessThanOrEqual(le('10'))
      expect(
        sampleValue(samples, 'tessera_http_request_duration_seconds_sum', {
          method: 'POST',
          route: '/v1/user/auth/login',
          status: '200',
        }),
      ).toBeGreaterThan(0)

      // No concrete id or raw path anywhere in the exposition.
      const routes = new Set(
        samples
          .filter((s) => s.name.startsWith('tessera_http_request_duration_seconds'))
          .map((s) => s.labels.route),
      )
      for (const route of routes) expect(route).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/)
      expect(text).not.toContain(sid)
      expect(text).not.toContain('/no/such/route')
      for (const secret of [PASSWORD, a1.access_token, a1.refresh_token, alice.email]) {
        expect(text).not.toContain(secret)
      }
    })

    it('keeps one registry per app, not prom-client’s global one', async () => {
      const other = await makeTestApp({ dialect })
      try {
        const { samples } = await scrape(other)
        expect(sampleValue(samples, 'tessera_logins_total', { outcome: 'ok' })).toBe(0)
        expect(samples.some((s) => s.name === 'tessera_http_request_duration_seconds_count')).toBe(
          false,
        )
      } finally {
        await other.close()
      }
      // The first app's figures are its own and unaffected.
      expect(
        sampleValue((await scrape(app)).samples, 'tessera_logins_total', { outcome: 'ok' }),
      ).toBe(4)
      expect(await globalRegistry.getSingleMetric('tessera_logins_total')).toBeUndefined()
    })
  })
}

for (const dialect of dialects()) {
  describe(`tessera_sessions_live stays cheap [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app?.close())

    it('tessera_sessions_live is counted once per refresh period', async () => {
      // However many scrapes.
      app.clock.advance(SESSIONS_LIVE_REFRESH_MS)
      const live = async () => sampleValue((await scrape(app)).samples, 'tessera_sessions_live')
      const parallel = async () => Promise.all(Array.from({ length: 20 }, live))
      const before = await live()

      // Two new sessions: the cached count does not see them within the period...
      for (const email of [(await register(app)).email, (await register(app)).email])
        await login(app, email)
      expect(await parallel()).toEqual(Array(20).fill(before))
      app.clock.advance(SESSIONS_LIVE_REFRESH_MS - 1)
      expect(await live()).toBe(before)
      // ...and the first scrapes after it, all at once, get the one new count.
      app.clock.advance(1)
      expect(await parallel()).toEqual(Array(20).fill(before + 2))
      const { text } = await scrape(app)
      expect(text).toContain(`counted at most every ${SESSIONS_LIVE_REFRESH_MS / 1000} s`)
    })

    it('the live-session count reads the sessions_live partial index', async () => {
      // Not every session.
      const { db, database } = app.server.tessera
      const compiled = countLiveSessions(db, app.clock()).compile()
      const plan = await db.connection().execute(async (conn) => {
        if (database.client.dialect === 'sqlite') {
          const { rows } = await conn.executeQuery<{ detail: string }>(
            CompiledQuery.raw(`explain query plan ${compiled.sql}`, [...compiled.parameters]),
          )
          return rows.map((r) => r.detail).join('\n')
        }
        // The test tables are tiny: without this the planner rightly prefers reading the table.
        await conn.executeQuery(CompiledQuery.raw('set enable_seqscan = off'))
        try {
          const { rows } = await conn.executeQuery<{ 'QUERY PLAN': string }>(
            CompiledQuery.raw(`explain ${compiled.sql}`, [...compiled.parameters]),
          )
          return rows.map((r) => r['QUERY PLAN']).join('\n')
        } finally {
          await conn.executeQuery(CompiledQuery.raw('reset enable_seqscan'))
        }
      })
      expect(plan).toContain('sessions_live')
    })
  })
}

for (const dialect of dialects()) {
  describe(`federated logins in GET /metrics [${dialect}]`, () => {
    const FEDERATED = 'tessera_federated_logins_total'
    const OUTCOMES = [
      'ok',
      'linked',
      'access_denied',
      'provider_error',
      'account_exists',
      'account_disabled',
      'email_required',
      'link_required',
      'identity_taken',
      'provider_already_linked',
      'invalid_oauth_state',
      'invalid_login_code',
      'service_unavailable',
      'rate_limited',
    ]
    let idp: FakeOidcProvider
    let app: TestApp

    beforeAll(async () => {
      idp = await startOidcProvider()
      const {
        OAUTH_GOOGLE_CLIENT_ID,
        OAUTH_GOOGLE_CLIENT_SECRET,
        OAUTH_GITLAB_CLIENT_ID,
        OAUTH_GITLAB_CLIENT_SECRET,
      } = idp.env()
      app = await makeTestApp({
        dialect,
        env: {
          ...federationEnv(),
          // Google and GitLab only; five authorize requests per window.
          OAUTH_GOOGLE_CLIENT_ID,
          OAUTH_GOOGLE_CLIENT_SECRET,
          OAUTH_GOOGLE_ISSUER: idp.issuer,
          OAUTH_GITLAB_CLIENT_ID,
          OAUTH_GITLAB_CLIENT_SECRET,
          OAUTH_GITLAB_ISSUER: idp.issuer,
          RATE_LIMIT_OAUTH_PER_IP: '5',
        },
      })
    }, 60_000)
    afterAll(async () => {
      await app?.close()
      await idp?.close()
    })

    const startUrl = (provider: string) => authorizeUrl(provider, `&${pkce.query}`)

    /**
     * One sign-in in a fresh browser: the callback URL on Tessera, and the browser holding its
     * cookie.
     */
    async function toCallback(provider: string) {
      const browser = new Browser(app.url)
      const started = await browser.fetch(startUrl(provider), {
        headers: { accept: 'application/json' },
      })
      expect(started.status, await started.clone().text()).toBe(200)
      const start = ((await started.json()) as { authorization_url: string }).authorization_url
      return { browser, callback: await browser.toCallback(start) }
    }

    it('exports every outcome of each enabled provider at 0, none for others', async () => {
      const { samples } = await scrape(app)
      for (const provider of ['google', 'gitlab']) {
        for (const outcome of OUTCOMES)
          expect(sampleValue(samples, FEDERATED, { provider, outcome })).toBe(0)
      }
      expect(
        sampleValue(samples, FEDERATED, { provider: 'none', outcome: 'invalid_login_code' }),
      ).toBe(0)
      expect(sampleValue(samples, FEDERATED, { provider: 'none', outcome: 'rate_limited' })).toBe(0)
      const providers = new Set(
        samples.filter((s) => s.name === FEDERATED).map((s) => s.labels.provider),
      )
      expect([...providers].sort()).toEqual(['gitlab', 'google', 'none'])
    })

    it('counts how each federated sign-in ended, by provider', async () => {
      // Apart from password logins.
      const email = uniqueEmail('fed-metrics')
      // ok: a Google login redeemed at exchange; its code presented again: invalid_login_code.
      idp.current = { sub: uniqueSubject('metrics'), email, email_verified: true }
      const first = await toCallback('google')
      const back = await first.browser.fetch(first.callback)
      const code = new URL(back.headers.get('location')!).searchParams.get('code')!
      const json = { code, code_verifier: pkce.verifier }
      expect((await app.request('/v1/user/auth/oauth/exchange', { json })).status).toBe(200)
      expect((await app.request('/v1/user/auth/oauth/exchange', { json })).status).toBe(401)
      // invalid_oauth_state: the same callback again.
      expect((await first.browser.fetch(first.callback)).status).toBe(400)
      // account_exists: another GitLab account with the same verified email.
      idp.current = { sub: uniqueSubject('metrics'), email, email_verified: true }
      const taken = await toCallback('gitlab')
      const refused = new URL((await taken.browser.fetch(taken.callback)).headers.get('location')!)
      expect(refused.searchParams.get('error')).toBe('account_exists')
      // email_required: an unverified address.
      idp.current = {
        sub: uniqueSubject('metrics'),
        email: uniqueEmail('unverified'),
        email_verified: false,
      }
      const unverified = await toCallback('google')
      const noEmail = new URL(
        (await unverified.browser.fetch(unverified.callback)).headers.get('location')!,
      )
      expect(noEmail.searchParams.get('error')).toBe('email_required')
      // rate_limited: authorize 4 and 5 of 5, then Google and an unknown provider over the limit.
      const browser = new Browser(app.url)
      const stray = `no-such-provider-${crypto.randomUUID()}`
      expect((await browser.fetch(startUrl(stray))).status).toBe(404)
      expect((await browser.fetch(startUrl(stray))).status).toBe(404)
      expect((await browser.fetch(startUrl('google'))).status).toBe(429)
      expect((await browser.fetch(startUrl(stray))).status).toBe(429)

      const { text, samples } = await scrape(app)
      const federated = (provider: string, outcome: string) =>
        sampleValue(samples, FEDERATED, { provider, outcome })
      expect(federated('google', 'ok')).toBe(1)
      expect(federated('none', 'invalid_login_code')).toBe(1)
      expect(federated('google', 'invalid_oauth_state')).toBe(1)
      expect(federated('gitlab', 'account_exists')).toBe(1)
      expect(federated('google', 'email_required')).toBe(1)
      expect(federated('google', 'rate_limited')).toBe(1)
      expect(federated('none', 'rate_limited')).toBe(1)
      const total = samples.filter((s) => s.name === FEDERATED).reduce((sum, s) => sum + s.value, 0)
      expect(total).toBe(7)
      // Password logins are their own metric; a provider named in a URL never becomes a label.
      expect(sampleValue(samples, 'tessera_logins_total', { outcome: 'ok' })).toBe(0)
      expect(text).not.toContain(stray)
      expect(
        new Set(samples.filter((s) => s.name === FEDERATED).map((s) => s.labels.provider)),
      ).toEqual(new Set(['gitlab', 'google', 'none']))
    })
  })
}

describe('GET /metrics with METRICS_TOKEN', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp({ env: { METRICS_TOKEN } })
  })
  afterAll(() => app?.close())

  it('answers 401 without the token, with a wrong one or another scheme, 200 with it', async () => {
    for (const authorization of [
      undefined,
      'Bearer wrong-token-0123456789abcdef',
      `Basic ${METRICS_TOKEN}`,
      METRICS_TOKEN,
    ]) {
      const res = await app.request(
        '/metrics',
        authorization === undefined ? {} : { headers: { authorization } },
      )
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="tessera"/)
      const body = await res.text()
      expect(body).not.toContain('tessera_logins_total')
      expect(body).not.toContain(METRICS_TOKEN)
    }
    await scrape(app, METRICS_TOKEN)
    // The scheme is case-insensitive (RFC 9110 §11.1).
    const lower = await app.request('/metrics', {
      headers: { authorization: `bearer ${METRICS_TOKEN}` },
    })
    expect(lower.status).toBe(200)
  })

  it('rejects a METRICS_TOKEN shorter than 16 characters at start-up', async () => {
    const { loadConfig, ConfigError } = await import('../../src/config/index.js')
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(ConfigError)
    expect(loadConfig({ METRICS_TOKEN }).metricsToken).toBe(METRICS_TOKEN)
    expect(loadConfig({}).metricsToken).toBeUndefined()
  })
})
