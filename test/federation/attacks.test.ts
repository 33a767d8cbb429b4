import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { type TestApp, testKeyEnv } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  authorizeUrl,
  Browser,
  CLIENT_REDIRECT_URI,
  clientPkce,
  type FakeOidcProvider,
  TESSERA_TEST_ISSUER,
} from '../support/oidc.js'
import { expectProblem, type TokenPairBody, uniqueEmail, uniqueSubject } from '../support/users.js'

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('base64url')
const pkce = clientPkce()

for (const dialect of dialects()) {
  describe(`federation attacks [${dialect}]`, () => {
    let federation: Federation
    let app: TestApp
    let idp: FakeOidcProvider

    beforeAll(async () => {
      federation = await startFederation({ github: true })
      idp = federation.idp
      app = await federation.app({ dialect })
    }, 60_000)
    afterAll(() => federation?.close())

    /** Starts a flow in `browser` and returns the provider URL it was sent to. */
    async function authorize(browser: Browser, provider = 'google') {
      const res = await browser.fetch(authorizeUrl(provider, `&${pkce.query}`), {
        headers: { accept: 'application/json' },
      })
      expect(res.status, await res.clone().text()).toBe(200)
      return ((await res.json()) as { authorization_url: string }).authorization_url
    }

    async function counts() {
      const db = app.server.tessera.db
      const count = async (table: 'users' | 'identities' | 'login_codes') =>
        Number(
          (
            await db
              .selectFrom(table)
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        )
      return {
        users: await count('users'),
        identities: await count('identities'),
        login_codes: await count('login_codes'),
      }
    }

    function clientError(res: Response) {
      expect(res.status).toBe(302)
      const location = new URL(res.headers.get('location')!)
      expect(`${location.origin}${location.pathname}`).toBe(CLIENT_REDIRECT_URI)
      expect(location.searchParams.get('code')).toBeNull()
      return location.searchParams.get('error')
    }

    it('an ID token with another nonce than the stored one is refused', async () => {
      // And creates nothing.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('nonce'), email_verified: true }
      const before = await counts()
      const browser = new Browser(app.url)
      const start = await authorize(browser)
      const state = new URL(start).searchParams.get('state')!
      const updated = await app.server.tessera.db
        .updateTable('oauth_states')
        .set({ nonce: 'a-different-nonce-than-the-provider-received-000' })
        .where('state_hash', '=', sha256(state))
        .executeTakeFirst()
      expect(Number(updated.numUpdatedRows)).toBe(1)
      const callback = await browser.toCallback(start)
      expect(clientError(await browser.fetch(callback))).toBe('provider_error')
      expect(await counts()).toEqual(before)
    })

    it('a code issued to another client is refused and creates nothing', async () => {
      // Wrong audience.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('aud'), email_verified: true }
      const before = await counts()
      const browser = new Browser(app.url)
      // The attacker runs the provider flow for client tessera-gitlab but with Google's state,
      // then hands the resulting code to Tessera's Google callback.
      const start = new URL(await authorize(browser, 'google'))
      start.searchParams.set('client_id', 'tessera-gitlab')
      start.searchParams.set(
        'redirect_uri',
        `${TESSERA_TEST_ISSUER}/v1/user/authenticate/gitlab/callback`,
      )
      const callback = await browser.toCallback(start.toString())
      expect(callback).toContain('/gitlab/callback?')
      expect(new URL(callback).searchParams.get('code')).toBeTruthy()
      const swapped = callback.replace('/gitlab/callback', '/google/callback')
      expect(clientError(await browser.fetch(swapped))).toBe('provider_error')
      expect(await counts()).toEqual(before)
    })

    it('a provider error (access_denied) goes back to the client', async () => {
      // It creates nothing and burns the state.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('denied'), email_verified: true }
      const before = await counts()
      const browser = new Browser(app.url)
      const start = await authorize(browser)
      const state = new URL(start).searchParams.get('state')!
      const realCallback = await browser.toCallback(start)
      const denied = new URL(`${TESSERA_TEST_ISSUER}/v1/user/authenticate/google/callback`)
      denied.searchParams.set('error', 'access_denied')
      denied.searchParams.set('state', state)
      denied.searchParams.set('iss', idp.issuer)
      expect(clientError(await browser.fetch(denied.toString()))).toBe('access_denied')
      expect(await counts()).toEqual(before)
      // The state is spent: the real code cannot be used afterwards.
      await expectProblem(await browser.fetch(realCallback), 400, 'invalid_oauth_state')
      expect(await counts()).toEqual(before)
    })

    it('ten concurrent callbacks with one state: exactly one login code', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('cb-race'), email_verified: true }
      const before = await counts()
      const browser = new Browser(app.url)
      const callback = await browser.toCallback(await authorize(browser))
      const responses = await Promise.all(Array.from({ length: 10 }, () => browser.fetch(callback)))
      const codes: string[] = []
      let refused = 0
      for (const res of responses) {
        if (res.status === 302) {
          const code = new URL(res.headers.get('location')!).searchParams.get('code')
          expect(code).toMatch(/^tessera_lc_/)
          codes.push(code!)
        } else {
          await expectProblem(res, 400, 'invalid_oauth_state')
          refused += 1
        }
      }
      expect(codes).toHaveLength(1)
      expect(refused).toBe(9)
      const after = await counts()
      expect(after.login_codes).toBe(before.login_codes + 1)
      expect(after.users).toBe(before.users + 1)
      expect(after.identities).toBe(before.identities + 1)
    })

    it('a flow started on one replica finishes on another over the same database', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('replica'), email_verified: true }
      const replica: RunningServer = await startServer(
        loadConfig({
          HOST: '127.0.0.1',
          PORT: '0',
          DATABASE_URL: app.databaseUrl,
          LOG_LEVEL: 'silent',
          ...testKeyEnv(app.databaseUrl),
          ...federation.env,
        }),
        { clock: app.clock },
      )
      try {
        const browser = new Browser(app.url)
        const callback = await browser.toCallback(await authorize(browser))
        const [cookie, ...others] = Object.entries(browser.cookies(new URL(app.url).host))
        expect(others).toEqual([])
        const res = await fetch(replica.url + callback.slice(TESSERA_TEST_ISSUER.length), {
          headers: { cookie: `${cookie![0]}=${cookie![1]}` },
          redirect: 'manual',
        })
        expect(res.status, await res.clone().text()).toBe(302)
        const code = new URL(res.headers.get('location')!).searchParams.get('code')
        expect(code).toMatch(/^tessera_lc_/)
        const exchanged = await app.request('/v1/user/auth/oauth/exchange', {
          json: { code, code_verifier: pkce.verifier },
        })
        expect(exchanged.status, await exchanged.clone().text()).toBe(200)
        const pair = (await exchanged.json()) as TokenPairBody
        expect(pair.access_token).toBeTruthy()
        expect(pair.refresh_token).toBeTruthy()
      } finally {
        await replica.close()
      }
    })
  })
}
