/**
 * Issue items 3 and 13: the one-time login code is bound to the client that started the flow
 * (PKCE between the client and Tessera, and its `state` handed back), and every flow gets a fresh
 * browser binding of its own, never one the browser already carried (README, "Federated login").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  authorizeUrl,
  BROWSER_COOKIE,
  Browser,
  type ClientPkce,
  clientPkce,
  type FakeOidcProvider,
  TESSERA_TEST_ISSUER,
} from '../support/oidc.js'
import {
  expectProblem,
  registerAndLogin,
  type TokenPairBody,
  uniqueEmail,
  uniqueSubject,
} from '../support/users.js'

const PLANTED = 'P'.repeat(43)

for (const dialect of dialects()) {
  describe(`federated login bound to its client and browser [${dialect}]`, () => {
    let app: TestApp
    let optional: TestApp
    let idp: FakeOidcProvider
    let federation: Federation

    beforeAll(async () => {
      federation = await startFederation()
      idp = federation.idp
      ;[app, optional] = await Promise.all([
        federation.app({ dialect }),
        federation.app({ dialect, env: { OAUTH_CLIENT_PKCE: 'optional' } }),
      ])
    }, 60_000)
    afterAll(() => federation?.close())

    const host = (target: TestApp) => new URL(target.url).host
    const googleAuthorizeUrl = (query: string) => authorizeUrl('google', query)

    async function authorize(browser: Browser, query: string, token?: string) {
      const res = await browser.fetch(googleAuthorizeUrl(query), {
        headers: {
          accept: 'application/json',
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
      })
      expect(res.status, await res.clone().text()).toBe(200)
      return { res, start: ((await res.json()) as { authorization_url: string }).authorization_url }
    }

    /** A login flow in `browser` up to the redirect to the client. */
    async function flow(target: TestApp, query: string, browser = new Browser(target.url)) {
      const { start } = await authorize(browser, query)
      return (await browser.follow(start)).url
    }

    const exchange = (target: TestApp, json: Record<string, unknown>) =>
      target.request('/v1/user/auth/oauth/exchange', { json })

    it("login CSRF: an attacker's code fails with the victim's verifier", async () => {
      // Fed to the victim's client; and the code is spent.
      // The attacker signs in at the provider as themselves through an ordinary client flow...
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('attacker'), email_verified: true }
      const attacker: ClientPkce = clientPkce()
      const url = await flow(app, `&${attacker.query}`)
      const code = url.searchParams.get('code')
      expect(code).toMatch(/^tessera_lc_/)
      // ...and steers the victim's browser to the client's redirect URI with that code. The
      // victim's client exchanges it with the verifier of its own flow.
      const victim = clientPkce()
      await expectProblem(
        await exchange(app, { code, code_verifier: victim.verifier }),
        401,
        'invalid_login_code',
      )
      // Single use: not even the right verifier redeems it now.
      await expectProblem(
        await exchange(app, { code, code_verifier: attacker.verifier }),
        401,
        'invalid_login_code',
      )
    })

    it('a missing or malformed verifier is invalid_login_code and burns the code', async () => {
      // The right verifier logs in.
      for (const wrong of [
        {},
        { code_verifier: 'short' },
        { code_verifier: `${'a'.repeat(42)}!` },
      ]) {
        idp.current = { sub: uniqueSubject(), email: uniqueEmail('verifier'), email_verified: true }
        const pkce = clientPkce()
        const code = (await flow(app, `&${pkce.query}`)).searchParams.get('code')
        await expectProblem(await exchange(app, { code, ...wrong }), 401, 'invalid_login_code')
        await expectProblem(
          await exchange(app, { code, code_verifier: pkce.verifier }),
          401,
          'invalid_login_code',
        )
      }
      idp.current = {
        sub: uniqueSubject(),
        email: uniqueEmail('verifier-ok'),
        email_verified: true,
      }
      const pkce = clientPkce()
      const code = (await flow(app, `&${pkce.query}`)).searchParams.get('code')
      const res = await exchange(app, { code, code_verifier: pkce.verifier })
      expect(res.status, await res.clone().text()).toBe(200)
      expect((await res.json()) as TokenPairBody).toHaveProperty('refresh_token')
    })

    it('authorize refuses a flow without S256 code_challenge, or a malformed state', async () => {
      const pkce = clientPkce()
      const cases: Array<[string, string]> = [
        ['', 'code_challenge'],
        ['&code_challenge_method=S256', 'code_challenge'],
        [`&code_challenge=${pkce.challenge}`, 'code_challenge_method'],
        [`&code_challenge=${pkce.challenge}&code_challenge_method=plain`, 'code_challenge_method'],
        [`&code_challenge=${pkce.challenge.slice(1)}&code_challenge_method=S256`, 'code_challenge'],
        [
          `&code_challenge=${pkce.challenge.slice(0, 42)}%2B&code_challenge_method=S256`,
          'code_challenge',
        ],
        [`&${pkce.query}&state=`, 'state'],
        [`&${pkce.query}&state=${'s'.repeat(513)}`, 'state'],
        [`&${pkce.query}&state=%C3%A9t%C3%A9`, 'state'],
        [`&${pkce.query}&state=a%0Ab`, 'state'],
      ]
      for (const [query, field] of cases) {
        const res = await app.request(googleAuthorizeUrl(query).slice(TESSERA_TEST_ISSUER.length), {
          redirect: 'manual',
        })
        const body = await expectProblem(res, 400, 'validation_failed')
        expect(
          (body as unknown as { errors: { field: string }[] }).errors.map((e) => e.field),
          query,
        ).toEqual([field])
      }
    })

    it("the client's state comes back on every outcome: code, error and linked", async () => {
      const pkce = clientPkce()
      const state = 'opaque state: {"tab": 7} & more ~!'
      const q = `&${pkce.query}&state=${encodeURIComponent(state)}`
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('state'), email_verified: true }
      const ok = await flow(app, q)
      expect(ok.searchParams.get('code')).toMatch(/^tessera_lc_/)
      expect(ok.searchParams.get('state')).toBe(state)
      idp.current = {
        sub: uniqueSubject(),
        email: uniqueEmail('state-unverified'),
        email_verified: false,
      }
      const failed = await flow(app, q)
      expect(failed.searchParams.get('error')).toBe('email_required')
      expect(failed.searchParams.get('state')).toBe(state)
      const { tokens } = await registerAndLogin(app)
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('state-link'), email_verified: true }
      const browser = new Browser(app.url)
      // A link flow hands out no code, so it needs no challenge.
      const { start } = await authorize(
        browser,
        `&state=${encodeURIComponent(state)}`,
        tokens.access_token,
      )
      const linked = (await browser.follow(start)).url
      expect(linked.searchParams.get('linked')).toBe('google')
      expect(linked.searchParams.get('state')).toBe(state)
      // Without a client state, none is invented.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('no-state'), email_verified: true }
      expect((await flow(app, `&${pkce.query}`)).searchParams.has('state')).toBe(false)
    })

    it('OAUTH_CLIENT_PKCE=optional', async () => {
      // A client without PKCE logs in (and gets its state back); a PKCE client is not fooled by
      // such a code.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('no-pkce'), email_verified: true }
      const url = await flow(optional, '&state=s-1')
      expect(url.searchParams.get('state')).toBe('s-1')
      const res = await exchange(optional, { code: url.searchParams.get('code') })
      expect(res.status, await res.clone().text()).toBe(200)
      // With PKCE the binding still holds in this mode.
      idp.current = {
        sub: uniqueSubject(),
        email: uniqueEmail('pkce-in-optional'),
        email_verified: true,
      }
      const pkce = clientPkce()
      const bound = (await flow(optional, `&${pkce.query}`)).searchParams.get('code')
      await expectProblem(await exchange(optional, { code: bound }), 401, 'invalid_login_code')
      // A code from a flow without PKCE, fed to a client that does PKCE: refused.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('injected'), email_verified: true }
      const unbound = (await flow(optional, '')).searchParams.get('code')
      await expectProblem(
        await exchange(optional, { code: unbound, code_verifier: clientPkce().verifier }),
        401,
        'invalid_login_code',
      )
    })

    it('fixation: a browser binding planted before the flow is not adopted', async () => {
      // And a callback with only that binding fails.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('fixation'), email_verified: true }
      const browser = new Browser(app.url)
      browser.setCookie(host(app), 'tessera_oauth_browser', PLANTED, '/v1/user/authenticate')
      const { res, start } = await authorize(browser, `&${clientPkce().query}`)
      const [setCookie, ...more] = res.headers.getSetCookie()
      expect(more).toEqual([])
      const [, name, value] = /^([^=]+)=([^;]*)/.exec(setCookie!)!
      expect(name).toMatch(BROWSER_COOKIE)
      expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(value).not.toBe(PLANTED)
      const callback = await browser.toCallback(start)
      // The browser the attacker prepared carries only the planted value, under any name.
      const path = callback.slice(TESSERA_TEST_ISSUER.length)
      for (const cookie of [`tessera_oauth_browser=${PLANTED}`, `${name}=${PLANTED}`]) {
        const planted = await fetch(app.url + path, { headers: { cookie }, redirect: 'manual' })
        await expectProblem(planted, 400, 'invalid_oauth_state')
      }
    })

    it('two parallel flows in one browser both complete', async () => {
      // Each with its own binding, cleared at its callback.
      const browser = new Browser(app.url)
      const first = clientPkce()
      const second = clientPkce()
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('tab-1'), email_verified: true }
      const a = await authorize(browser, `&${first.query}&state=tab-1`)
      const callbackA = await browser.toCallback(a.start)
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('tab-2'), email_verified: true }
      const b = await authorize(browser, `&${second.query}&state=tab-2`)
      const callbackB = await browser.toCallback(b.start)
      const names = Object.keys(browser.cookies(host(app))).filter((n) => BROWSER_COOKIE.test(n))
      expect(names).toHaveLength(2)
      // The later flow finishes first; then the earlier one.
      const results = []
      for (const [callback, pkce] of [
        [callbackB, second],
        [callbackA, first],
      ] as const) {
        const back = await browser.fetch(callback)
        expect(back.status, await back.clone().text()).toBe(302)
        const code = new URL(back.headers.get('location')!).searchParams.get('code')
        const res = await exchange(app, { code, code_verifier: pkce.verifier })
        expect(res.status, await res.clone().text()).toBe(200)
        results.push(new URL(back.headers.get('location')!).searchParams.get('state'))
      }
      expect(results).toEqual(['tab-2', 'tab-1'])
      expect(Object.keys(browser.cookies(host(app))).filter((n) => BROWSER_COOKIE.test(n))).toEqual(
        [],
      )
    })
  })
}
