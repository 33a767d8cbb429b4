/**
 * RATE_LIMIT_OAUTH_PER_IP: authorize, callback and exchange each count requests per client
 * address in the shared `rate_limits` table, answer 429 `rate_limited` with Retry-After once the
 * window's allowance is used, are counted before any other work (a limited callback does not spend
 * its state), and 0 turns the limit off.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  authorizeUrl,
  Browser,
  clientPkce,
  type FakeOidcProvider,
  TESSERA_TEST_ISSUER,
} from '../support/oidc.js'
import { expectProblem, uniqueEmail, uniqueSubject } from '../support/users.js'

const WINDOW = 600
const pkce = clientPkce()
const AUTHORIZE = authorizeUrl('google', `&${pkce.query}`)
/** A callback with a state Tessera never issued. */
const FORGED_QUERY = new URLSearchParams({ code: 'x', state: 'A'.repeat(43) })
const CALLBACK = `${TESSERA_TEST_ISSUER}/v1/user/authenticate/google/callback`
const FORGED_CALLBACK = `${CALLBACK}?${FORGED_QUERY}`

async function expectRateLimited(res: Response) {
  const retryAfter = res.headers.get('retry-after')
  await expectProblem(res, 429, 'rate_limited')
  expect(retryAfter).toMatch(/^\d+$/)
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
  expect(Number(retryAfter)).toBeLessThanOrEqual(WINDOW)
}

const exchange = (app: TestApp, code = 'tessera_lc_unknown') =>
  app.request('/v1/user/auth/oauth/exchange', { json: { code, code_verifier: pkce.verifier } })

for (const dialect of dialects()) {
  describe(`federated login rate limit per IP [${dialect}]`, () => {
    let federation: Federation
    let idp: FakeOidcProvider
    let app: TestApp
    let unlimited: TestApp

    beforeAll(async () => {
      federation = await startFederation()
      idp = federation.idp
      const window = String(WINDOW)
      ;[app, unlimited] = await Promise.all([
        federation.app({
          dialect,
          env: { RATE_LIMIT_WINDOW: window, RATE_LIMIT_OAUTH_PER_IP: '2' },
        }),
        federation.app({
          dialect,
          env: { RATE_LIMIT_WINDOW: window, RATE_LIMIT_OAUTH_PER_IP: '0' },
        }),
      ])
    }, 60_000)
    afterAll(() => federation?.close())

    async function counters(target: TestApp) {
      const { rows } = await sql<{
        key: string
        points: number
      }>`select key, points from rate_limits`.execute(target.server.tessera.db)
      return Object.fromEntries(
        rows.filter((r) => r.key.startsWith('oauth_')).map((r) => [r.key, Number(r.points)]),
      )
    }

    it('each route has its own allowance', async () => {
      // The third request of a route is 429 with Retry-After.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('rl'), email_verified: true }
      const browser = new Browser(app.url)
      const json = { headers: { accept: 'application/json' } }

      // authorize 1 of 2: a whole flow, up to the callback, which is not fetched yet.
      const started = await browser.fetch(AUTHORIZE, json)
      expect(started.status, await started.clone().text()).toBe(200)
      const callback = await browser.toCallback(
        ((await started.json()) as { authorization_url: string }).authorization_url,
      )
      // authorize 2 of 2 (an unknown provider counts too: the limit comes before the lookup).
      expect((await browser.fetch(AUTHORIZE.replace('/google/', '/nope/'))).status).toBe(404)
      await expectRateLimited(await browser.fetch(AUTHORIZE, json))

      // callback: two refused states use the allowance; the real callback is then limited...
      const forged = FORGED_CALLBACK
      await expectProblem(await browser.fetch(forged), 400, 'invalid_oauth_state')
      await expectProblem(await browser.fetch(forged), 400, 'invalid_oauth_state')
      await expectRateLimited(await browser.fetch(callback))
      // ...without spending its state: once the window allows, the same callback logs in.
      await app.server.tessera.limits.oauthCallbackPerIp.reset('127.0.0.1')
      const back = await browser.fetch(callback)
      expect(back.status, await back.clone().text()).toBe(302)
      const code = new URL(back.headers.get('location')!).searchParams.get('code')!
      expect(code).toMatch(/^tessera_lc_/)

      // exchange: two unknown codes use the allowance; even the valid code is then limited.
      await expectProblem(await exchange(app), 401, 'invalid_login_code')
      await expectProblem(await exchange(app), 401, 'invalid_login_code')
      await expectRateLimited(await exchange(app, code))
      await app.server.tessera.limits.oauthExchangePerIp.reset('127.0.0.1')
      expect((await exchange(app, code)).status).toBe(200)

      expect(await counters(app)).toEqual({
        'oauth_authorize_ip:127.0.0.1': 3,
        'oauth_callback_ip:127.0.0.1': 1,
        'oauth_exchange_ip:127.0.0.1': 1,
      })
    })

    it('RATE_LIMIT_OAUTH_PER_IP=0 turns the limit off', async () => {
      // No 429 past the default allowance, no counters.
      const requests = 65 // more than the default of 60 per window
      for (let i = 0; i < requests; i += 1) {
        await expectProblem(await exchange(unlimited), 401, 'invalid_login_code')
      }
      const browser = new Browser(unlimited.url)
      const forged = FORGED_CALLBACK
      for (let i = 0; i < requests; i += 1) {
        await expectProblem(await browser.fetch(forged), 400, 'invalid_oauth_state')
      }
      for (let i = 0; i < requests; i += 1) {
        expect((await browser.fetch(AUTHORIZE.replace('/google/', '/nope/'))).status).toBe(404)
      }
      expect(await counters(unlimited)).toEqual({})
    })
  })
}
