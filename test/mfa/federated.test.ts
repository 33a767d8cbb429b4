import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import { enrolTotp, mfaTicketOf, totpCode } from '../support/mfa.js'
import {
  authorizeUrl,
  Browser,
  clientPkce,
  type FakeOidcProvider,
  TESSERA_TEST_ISSUER,
} from '../support/oidc.js'
import { type TokenPairBody, tokenPairOf, uniqueEmail, uniqueSubject } from '../support/users.js'

const pkce = clientPkce()

/** The claims of a v4.public token: the base64url body minus its final 64 signature bytes. */
function claimsOf(accessToken: string): Record<string, unknown> {
  const body = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as Record<string, unknown>
}

for (const dialect of dialects()) {
  describe(`second factors and federated login [${dialect}]`, () => {
    let federation: Federation
    let idp: FakeOidcProvider
    let app: TestApp
    beforeAll(async () => {
      federation = await startFederation()
      idp = federation.idp
      app = await federation.app({ dialect })
    })
    afterAll(() => federation?.close())

    /** A federated login through the provider stand-in, up to the exchange's answer. */
    async function federatedExchange(): Promise<Response> {
      const browser = new Browser(app.url)
      const res = await browser.fetch(authorizeUrl('google', `&${pkce.query}`), {
        headers: { accept: 'application/json' },
      })
      const { authorization_url } = (await res.json()) as { authorization_url: string }
      const callback = await browser.toCallback(authorization_url)
      const done = await browser.fetch(callback.replace(TESSERA_TEST_ISSUER, app.url), {
        redirect: 'manual',
      })
      expect(done.status, await done.clone().text()).toBe(302)
      const code = new URL(done.headers.get('location')!).searchParams.get('code')
      return app.request('/v1/user/auth/oauth/exchange', {
        json: { code, code_verifier: pkce.verifier },
      })
    }

    it('an enrolled account signing in with a provider still needs its factor', async () => {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('fed-mfa'), email_verified: true }
      const first: TokenPairBody = await tokenPairOf(await federatedExchange())
      expect(claimsOf(first.access_token).amr).toEqual(['fed'])
      const { secret } = await enrolTotp(app, first.access_token)
      app.clock.advance(60_000)
      const { mfa_ticket, factors } = await mfaTicketOf(await federatedExchange())
      expect(factors).toEqual(['totp', 'recovery_code'])
      const pair = await tokenPairOf(
        await app.request('/v1/user/auth/mfa', {
          json: { mfa_ticket, totp_code: totpCode(app, secret) },
        }),
      )
      expect(claimsOf(pair.access_token).amr).toEqual(['fed', 'otp', 'mfa'])
    })
  })
}
