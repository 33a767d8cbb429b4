import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  authorizePath,
  authorizeUrl,
  Browser,
  CLIENT_REDIRECT_URI,
  clientPkce,
  type FakeGitHub,
  type FakeOidcProvider,
  TESSERA_TEST_ISSUER,
} from '../support/oidc.js'
import {
  expectProblem,
  registerAndLogin,
  type TokenPairBody,
  uniqueEmail,
  uniqueNumber,
  uniqueSubject,
} from '../support/users.js'

/**
 * This file's client: one PKCE pair for its flows (test/federation/client-binding.test.ts uses one
 * per flow).
 */
const pkce = clientPkce()

for (const dialect of dialects()) {
  describe(`federated login [${dialect}]`, () => {
    let federation: Federation & { github: FakeGitHub }
    let app: TestApp
    let idp: FakeOidcProvider
    let github: FakeGitHub

    beforeAll(async () => {
      federation = await startFederation({ github: true })
      ;({ idp, github } = federation)
      app = await federation.app({
        dialect,
        env: { OAUTH_REDIRECT_URIS: `${CLIENT_REDIRECT_URI}, http://client.test/other` },
      })
    }, 60_000)
    afterAll(() => federation?.close())

    /** Starts a flow in `browser` and returns the provider URL it was sent to. */
    async function authorize(
      browser: Browser,
      provider: string,
      token?: string,
      redirect = CLIENT_REDIRECT_URI,
    ) {
      const res = await browser.fetch(authorizeUrl(provider, `&${pkce.query}`, redirect), {
        headers: {
          accept: 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      })
      expect(res.status, await res.clone().text()).toBe(200)
      return ((await res.json()) as { authorization_url: string }).authorization_url
    }

    async function flow(provider: string, token?: string) {
      const browser = new Browser(app.url)
      const { url } = await browser.follow(await authorize(browser, provider, token))
      return url
    }

    async function exchange(code: string) {
      return app.request('/v1/user/auth/oauth/exchange', {
        json: { code, code_verifier: pkce.verifier },
      })
    }

    async function loginWith(provider: string): Promise<TokenPairBody> {
      const url = await flow(provider)
      const code = url.searchParams.get('code')
      expect(code, url.toString()).toMatch(/^tessera_lc_/)
      const res = await exchange(code!)
      expect(res.status, await res.clone().text()).toBe(200)
      return (await res.json()) as TokenPairBody
    }

    async function me(token: string) {
      const res = await app.request('/v1/user/me', { token })
      expect(res.status).toBe(200)
      return (await res.json()) as {
        id: string
        email: string
        account_type: string
        verified: boolean
        identities: { provider: string }[]
      }
    }

    it('an unknown Google identity creates a regular account', async () => {
      // The same identity logs in again.
      const email = uniqueEmail('google')
      idp.current = { sub: uniqueSubject(), email, email_verified: true, name: 'G User' }
      const first = await loginWith('google')
      const user = await me(first.access_token)
      expect(user).toMatchObject({ email, account_type: 'regular', verified: false })
      expect(user.identities.map((i) => i.provider)).toEqual(['google'])
      const second = await loginWith('google')
      expect((await me(second.access_token)).id).toBe(user.id)
    })

    it('redirects (302) unless JSON is asked for', async () => {
      // Without Accept: application/json; with PKCE S256, state and nonce.
      const res = await app.request(authorizePath('google', `&${pkce.query}`), {
        redirect: 'manual',
      })
      expect(res.status).toBe(302)
      const location = new URL(res.headers.get('location')!)
      expect(location.origin).toBe(idp.issuer)
      expect(location.searchParams.get('code_challenge_method')).toBe('S256')
      expect(location.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(location.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(location.searchParams.get('redirect_uri')).toBe(
        `${TESSERA_TEST_ISSUER}/v1/user/authenticate/google/callback`,
      )
      expect(res.headers.get('set-cookie')).toMatch(
        new RegExp(
          '^tessera_oauth_[0-9a-f]{16}=[A-Za-z0-9_-]{43}; ' +
            'Max-Age=600; Path=/v1/user/authenticate; HttpOnly; SameSite=Lax$',
          'i',
        ),
      )
    })

    it.each([
      ['cilogon', 'openid email org.cilogon.userinfo'],
      ['google', 'openid email profile'],
      ['gitlab', 'openid read_user'],
      ['github', 'user:email'],
    ])('asks %s for the documented scopes: %s', async (provider, scopes) => {
      const res = await app.request(authorizePath(provider, `&${pkce.query}`), {
        redirect: 'manual',
      })
      expect(res.status).toBe(302)
      expect(new URL(res.headers.get('location')!).searchParams.get('scope')).toBe(scopes)
    })

    it('a GitLab identity creates an account', async () => {
      // Scope read_user, the address from the provider.
      const email = uniqueEmail('gitlab')
      idp.current = { sub: uniqueSubject(), email, email_verified: true, name: 'GL User' }
      const user = await me((await loginWith('gitlab')).access_token)
      expect(user).toMatchObject({ email, account_type: 'regular' })
      expect(user.identities.map((i) => i.provider)).toEqual(['gitlab'])
    })

    it('the login code is single use', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('once'), email_verified: true }
      const url = await flow('google')
      const code = url.searchParams.get('code')!
      expect((await exchange(code)).status).toBe(200)
      await expectProblem(await exchange(code), 401, 'invalid_login_code')
      await expectProblem(await exchange('tessera_lc_nonsense'), 401, 'invalid_login_code')
    })

    it('one login code presented concurrently: exactly one token pair', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('race'), email_verified: true }
      const code = (await flow('google')).searchParams.get('code')!
      const statuses = await Promise.all(
        Array.from({ length: 8 }, async () => (await exchange(code)).status),
      )
      expect(statuses.filter((s) => s === 200)).toHaveLength(1)
      expect(statuses.filter((s) => s === 401)).toHaveLength(7)
    })

    it('a disabled account cannot log in with its identity', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('disabled'), email_verified: true }
      const tokens = await loginWith('google')
      const { id } = await me(tokens.access_token)
      await app.server.tessera.db
        .updateTable('users')
        .set({ disabled: 1 })
        .where('id', '=', id)
        .execute()
      expect((await flow('google')).searchParams.get('error')).toBe('account_disabled')
    })

    it('the login code expires after 60 s', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('late'), email_verified: true }
      const url = await flow('google')
      app.clock.advance(61_000)
      await expectProblem(await exchange(url.searchParams.get('code')!), 401, 'invalid_login_code')
    })

    it('an identity whose email has an account answers account_exists', async () => {
      // No linking by email.
      const { email } = await registerAndLogin(app)
      idp.current = { sub: uniqueSubject(), email: email.toUpperCase(), email_verified: true }
      const url = await flow('google')
      expect(url.searchParams.get('error')).toBe('account_exists')
      expect(url.searchParams.get('code')).toBeNull()
    })

    it('an unverified email does not create an account', async () => {
      idp.current = {
        sub: uniqueSubject(),
        email: uniqueEmail('unverified'),
        email_verified: false,
      }
      expect((await flow('google')).searchParams.get('error')).toBe('email_required')
    })

    it('a state is single use: replaying the callback is refused', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('replay'), email_verified: true }
      const browser = new Browser(app.url)
      const callback = await browser.toCallback(await authorize(browser, 'google'))
      expect(
        callback.startsWith(`${TESSERA_TEST_ISSUER}/v1/user/authenticate/google/callback`),
      ).toBe(true)
      const first = await browser.fetch(callback)
      expect(first.status).toBe(302)
      expect(new URL(first.headers.get('location')!).searchParams.get('code')).toMatch(
        /^tessera_lc_/,
      )
      await expectProblem(await browser.fetch(callback), 400, 'invalid_oauth_state')
    })

    it('a callback in another browser (no binding cookie) is refused', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('csrf'), email_verified: true }
      const browser = new Browser(app.url)
      const next = await browser.toCallback(await authorize(browser, 'google'))
      const other = new Browser(app.url)
      await expectProblem(await other.fetch(next), 400, 'invalid_oauth_state')
    })

    it('mix-up: a callback for one provider with the state of another is refused', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('mixup'), email_verified: true }
      const browser = new Browser(app.url)
      const next = await browser.toCallback(await authorize(browser, 'google'))
      const swapped = next.replace('/google/callback', '/gitlab/callback')
      await expectProblem(await browser.fetch(swapped), 400, 'invalid_oauth_state')
    })

    it('redirect_uri must be on the allow-list exactly', async () => {
      for (const uri of [
        'http://client.test/after-login/',
        'http://evil.test/after-login',
        'http://client.test/after-login?x=1',
        '',
      ]) {
        const res = await app.request(authorizePath('google', `&${pkce.query}`, uri), {
          redirect: 'manual',
        })
        await expectProblem(res, 400, 'validation_failed')
      }
    })

    it('disabled and unknown providers are 404', async () => {
      for (const p of ['facebook', '__proto__', 'constructor']) {
        await expectProblem(await app.request(authorizePath(p)), 404, 'not_found')
      }
    })

    it('ORCID cannot log in: without a bearer token it is refused', async () => {
      const res = await app.request(authorizePath('orcid'))
      await expectProblem(res, 401, 'unauthorized')
    })

    it('linking ORCID and CILogon to a logged-in account', async () => {
      // CILogon makes it academic and verified.
      const { tokens } = await registerAndLogin(app)
      idp.current = { sub: uniqueSubject('orcid') }
      const orcid = await flow('orcid', tokens.access_token)
      expect(orcid.searchParams.get('linked')).toBe('orcid')
      idp.current = { sub: uniqueSubject('cilogon'), email: uniqueEmail('campus') }
      const cilogon = await flow('cilogon', tokens.access_token)
      expect(cilogon.searchParams.get('linked')).toBe('cilogon')
      const user = await me(tokens.access_token)
      expect(user).toMatchObject({ account_type: 'academic', verified: true })
      expect(user.identities.map((i) => i.provider).sort()).toEqual(['cilogon', 'orcid'])

      // The linked identity now logs in to the same account; another account cannot take it.
      const again = await loginWith('cilogon')
      expect((await me(again.access_token)).id).toBe(user.id)
      const other = await registerAndLogin(app)
      expect((await flow('cilogon', other.tokens.access_token)).searchParams.get('error')).toBe(
        'identity_taken',
      )
    })

    it('an account created by CILogon starts academic and verified', async () => {
      idp.current = { sub: uniqueSubject('cilogon'), email: uniqueEmail('academic') }
      const tokens = await loginWith('cilogon')
      expect(await me(tokens.access_token)).toMatchObject({
        account_type: 'academic',
        verified: true,
      })
    })

    it('unlinking is refused when it leaves no way to log in', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('only'), email_verified: true }
      const tokens = await loginWith('gitlab')
      await expectProblem(
        await app.request('/v1/user/identities/gitlab', {
          method: 'DELETE',
          token: tokens.access_token,
        }),
        409,
        'last_login_method',
      )
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('second'), email_verified: true }
      expect((await flow('google', tokens.access_token)).searchParams.get('linked')).toBe('google')
      const res = await app.request('/v1/user/identities/gitlab', {
        method: 'DELETE',
        token: tokens.access_token,
      })
      expect(res.status).toBe(204)
      await expectProblem(
        await app.request('/v1/user/identities/gitlab', {
          method: 'DELETE',
          token: tokens.access_token,
        }),
        404,
        'not_found',
      )
    })

    it('GitHub: the numeric id is the subject', async () => {
      // The verified primary email names the account.
      const email = uniqueEmail('octo')
      github.current = {
        id: 1000 + uniqueNumber(),
        login: 'octo',
        name: 'Octo',
        emails: [
          { email: uniqueEmail('unverified'), primary: false, verified: false },
          { email, primary: true, verified: true },
        ],
      }
      const tokens = await loginWith('github')
      expect(await me(tokens.access_token)).toMatchObject({ email, account_type: 'regular' })
    })

    it('GitHub without a verified primary email creates nothing', async () => {
      github.current = {
        id: 5000 + uniqueNumber(),
        login: 'x',
        name: null,
        emails: [{ email: uniqueEmail('gh'), primary: true, verified: false }],
      }
      expect((await flow('github')).searchParams.get('error')).toBe('email_required')
    })
  })
}
