/**
 * Provider-vouched addresses (README, "Email verification and change"): an account a federated
 * login creates starts with `email_verified`, linking an identity whose verified address is the
 * account's own verifies it (another address does not), and an account without a password
 * changes its address on a recent authentication instead of a password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  authorizeUrl,
  Browser,
  CLIENT_REDIRECT_URI,
  clientPkce,
  type FakeOidcProvider,
} from '../support/oidc.js'
import {
  expectProblem,
  registerAndLogin,
  type TokenPairBody,
  uniqueEmail,
  uniqueSubject,
} from '../support/users.js'

const pkce = clientPkce()

for (const dialect of dialects()) {
  describe(`provider-vouched addresses [${dialect}]`, () => {
    let federation: Federation
    let app: TestApp
    let idp: FakeOidcProvider

    beforeAll(async () => {
      federation = await startFederation()
      idp = federation.idp
      app = await federation.app({ dialect, env: { OAUTH_REDIRECT_URIS: CLIENT_REDIRECT_URI } })
    }, 60_000)
    afterAll(() => federation?.close())

    async function flow(provider: string, token?: string): Promise<URL> {
      const browser = new Browser(app.url)
      const res = await browser.fetch(authorizeUrl(provider, `&${pkce.query}`), {
        headers: {
          accept: 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      })
      expect(res.status, await res.clone().text()).toBe(200)
      const { authorization_url } = (await res.json()) as { authorization_url: string }
      return (await browser.follow(authorization_url)).url
    }

    async function loginWith(provider: string): Promise<TokenPairBody> {
      const code = (await flow(provider)).searchParams.get('code')
      const res = await app.request('/v1/user/auth/oauth/exchange', {
        json: { code, code_verifier: pkce.verifier },
      })
      expect(res.status, await res.clone().text()).toBe(200)
      return (await res.json()) as TokenPairBody
    }

    const me = async (token: string) =>
      (await (await app.request('/v1/user/me', { token })).json()) as Record<string, unknown>

    it('a federated login creates an account whose address is verified', async () => {
      const email = uniqueEmail('google')
      idp.current = { sub: uniqueSubject(), email, email_verified: true, name: 'G' }
      const tokens = await loginWith('google')
      expect(await me(tokens.access_token)).toMatchObject({ email, email_verified: true })
    })

    it('linking an identity with the same verified address verifies it, another not', async () => {
      const same = await registerAndLogin(app)
      idp.current = { sub: uniqueSubject(), email: same.email.toUpperCase(), email_verified: true }
      expect((await flow('google', same.tokens.access_token)).searchParams.get('linked')).toBe(
        'google',
      )
      expect(await me(same.tokens.access_token)).toMatchObject({ email_verified: true })

      const other = await registerAndLogin(app)
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('elsewhere'), email_verified: true }
      expect((await flow('google', other.tokens.access_token)).searchParams.get('linked')).toBe(
        'google',
      )
      expect(await me(other.tokens.access_token)).toMatchObject({ email_verified: false })
    })

    it('without a password, an email change needs a recent authentication', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('nopw'), email_verified: true }
      const tokens = await loginWith('google')
      const change = () =>
        app.request('/v1/user/email/change', {
          token: tokens.access_token,
          json: { email: uniqueEmail('nopw-new') },
        })
      expect((await change()).status).toBe(202)
      app.clock.advance(301_000)
      try {
        await expectProblem(await change(), 401, 'reauthentication_required')
      } finally {
        app.clock.advance(-301_000)
      }
    })
  })
}
