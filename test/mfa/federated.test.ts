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
const SERVICE_SECRET = 'introspection-shared-secret-0123456789'

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
    /** An app whose operator trusts Google's MFA assertion (MFA_TRUST_PROVIDER_AMR). */
    let trusting: TestApp
    beforeAll(async () => {
      federation = await startFederation()
      idp = federation.idp
      app = await federation.app({ dialect })
      trusting = await federation.app({
        dialect,
        env: { MFA_TRUST_PROVIDER_AMR: 'google', SERVICE_SECRET },
      })
    })
    afterAll(() => federation?.close())

    /** A federated login to `on` through the provider stand-in, up to the exchange's answer. */
    async function federatedExchange(on: TestApp = app): Promise<Response> {
      const browser = new Browser(on.url)
      const res = await browser.fetch(authorizeUrl('google', `&${pkce.query}`), {
        headers: { accept: 'application/json' },
      })
      const { authorization_url } = (await res.json()) as { authorization_url: string }
      const callback = await browser.toCallback(authorization_url)
      const done = await browser.fetch(callback.replace(TESSERA_TEST_ISSUER, on.url), {
        redirect: 'manual',
      })
      expect(done.status, await done.clone().text()).toBe(302)
      const code = new URL(done.headers.get('location')!).searchParams.get('code')
      return on.request('/v1/user/auth/oauth/exchange', {
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

    /** A Google account of `on` with TOTP enrolled; `idp.current` is its upstream account. */
    async function enrolledGoogleAccount(on: TestApp): Promise<void> {
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('fed-amr'), email_verified: true }
      const first = await tokenPairOf(await federatedExchange(on))
      await enrolTotp(on, first.access_token)
      on.clock.advance(60_000)
    }

    it('a trusted provider that asserts MFA stands for the second factor', async () => {
      await enrolledGoogleAccount(trusting)
      idp.current = { ...idp.current, amr: ['pwd', 'otp'] }
      const pair = await tokenPairOf(await federatedExchange(trusting))
      expect(claimsOf(pair.access_token).amr).toEqual(['fed', 'mfa'])
      const introspected = await trusting.request('/v1/token/introspect', {
        headers: { 'x-service-secret': SERVICE_SECRET },
        json: { token: pair.access_token },
      })
      expect(((await introspected.json()) as { amr?: string[] }).amr).toEqual(['fed', 'mfa'])
      // An MFA `acr` (REFEDS) asserts it as well.
      idp.current = { ...idp.current, amr: ['pwd'], acr: 'https://refeds.org/profile/mfa' }
      await tokenPairOf(await federatedExchange(trusting))
    })

    it('an MFA assertion of a provider the operator does not trust is not enough', async () => {
      await enrolledGoogleAccount(app)
      idp.current = { ...idp.current, amr: ['mfa'], acr: 'https://refeds.org/profile/mfa' }
      await mfaTicketOf(await federatedExchange(app))
    })

    it('a trusted provider that asserts one factor only needs the second', async () => {
      await enrolledGoogleAccount(trusting)
      // Two methods of one factor (something held), and a single-factor `acr`.
      idp.current = { ...idp.current, amr: ['otp', 'sms'], acr: 'https://refeds.org/profile/sfa' }
      await mfaTicketOf(await federatedExchange(trusting))
      idp.current = { ...idp.current, amr: undefined, acr: undefined }
      await mfaTicketOf(await federatedExchange(trusting))
    })
  })
}
