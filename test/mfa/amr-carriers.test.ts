/**
 * The methods of a sign-in travel with what it hands on (README, "Second factors"): a one-time
 * login code the sign-in page mints for an application carries the browser session's `amr`, and
 * a device login approved from a session carries that session's. Tokens and introspection of
 * the resulting sessions show `mfa` exactly when the sign-in passed a second factor.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { approveAs, poll, startDevice } from '../support/device.js'
import { dialects } from '../support/dialects.js'
import { enrolTotp, loginWithTotp, totpCode } from '../support/mfa.js'
import { CLIENT_REDIRECT_URI, clientPkce, TESSERA_TEST_ISSUER } from '../support/oidc.js'
import { formToken, locationOf, PageBrowser } from '../support/pages.js'
import { login, PASSWORD, register, tokenPairOf, uniqueEmail } from '../support/users.js'

const SERVICE_SECRET = 'introspection-shared-secret-0123456789'

/** The claims of a v4.public token: the base64url body minus its final 64 signature bytes. */
function claimsOf(accessToken: string): Record<string, unknown> {
  const body = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as Record<string, unknown>
}

for (const dialect of dialects()) {
  describe(`amr of login codes and device logins [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          TESSERA_ISSUER: TESSERA_TEST_ISSUER,
          OAUTH_REDIRECT_URIS: CLIENT_REDIRECT_URI,
          SERVICE_SECRET,
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
        },
      })
    })
    afterAll(() => app?.close())

    /** The `amr` of an access token, and of its introspection (they must agree). */
    async function amrOf(accessToken: string): Promise<unknown> {
      const res = await app.request('/v1/token/introspect', {
        headers: { 'x-service-secret': SERVICE_SECRET },
        json: { token: accessToken },
      })
      const body = (await res.json()) as { active: boolean; amr?: string[] }
      expect(body.active).toBe(true)
      expect(body.amr).toEqual(claimsOf(accessToken).amr)
      return body.amr
    }

    /** An account with TOTP enrolled, a minute later (the enrolment's step is spent). */
    async function enrolled() {
      const { email } = await register(app, uniqueEmail('amr-carry'))
      const { secret } = await enrolTotp(app, (await login(app, email)).access_token)
      app.clock.advance(60_000)
      return { email, secret }
    }

    /** The application's side: the login code of a redirect, exchanged with its verifier. */
    async function exchanged(res: Response, verifier: string) {
      const back = new URL(locationOf(res))
      expect(back.origin + back.pathname).toBe(CLIENT_REDIRECT_URI)
      return tokenPairOf(
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code: back.searchParams.get('code'), code_verifier: verifier },
        }),
      )
    }

    it('a login code minted after the MFA step, or from its session, carries mfa', async () => {
      const { email, secret } = await enrolled()
      const browser = new PageBrowser(app)
      const pkce = clientPkce()
      const client = {
        return_to: CLIENT_REDIRECT_URI,
        code_challenge: pkce.challenge,
        code_challenge_method: 'S256',
      }
      const step = await browser.signIn(email, PASSWORD, client)
      const html = await step.text()
      expect(step.status, html.slice(0, 300)).toBe(200)
      const ticket = /name="mfa_ticket" value="([^"]+)"/.exec(html)![1]!
      const done = await browser.post('/login/mfa', {
        csrf: formToken(html),
        mfa_ticket: ticket,
        totp_code: totpCode(app, secret),
        ...client,
      })
      const pair = await exchanged(done, pkce.verifier)
      expect(await amrOf(pair.access_token)).toEqual(['pwd', 'otp', 'mfa'])
      // The browser is signed in now: the next application gets a code at once (`session`).
      const again = clientPkce()
      const query = new URLSearchParams({ ...client, code_challenge: again.challenge })
      const next = await exchanged(await browser.get(`/login?${query}`), again.verifier)
      expect(await amrOf(next.access_token)).toEqual(['pwd', 'otp', 'mfa'])
    })

    it('a login code of a password-only sign-in carries no mfa', async () => {
      const { email } = await register(app, uniqueEmail('amr-pwd'))
      const browser = new PageBrowser(app)
      const pkce = clientPkce()
      const client = {
        return_to: CLIENT_REDIRECT_URI,
        code_challenge: pkce.challenge,
        code_challenge_method: 'S256',
      }
      const pair = await exchanged(await browser.signIn(email, PASSWORD, client), pkce.verifier)
      expect(await amrOf(pair.access_token)).toEqual(['pwd'])
      const again = clientPkce()
      const query = new URLSearchParams({ ...client, code_challenge: again.challenge })
      const next = await exchanged(await browser.get(`/login?${query}`), again.verifier)
      expect(await amrOf(next.access_token)).toEqual(['pwd'])
    })

    it('a device login approved from a session that passed MFA carries mfa', async () => {
      const { email, secret } = await enrolled()
      const approver = await loginWithTotp(app, email, secret)
      const device = await startDevice(app)
      await approveAs(app.server.tessera, approver.access_token, device.user_code)
      const pair = await tokenPairOf(await poll(app, device.device_code))
      expect(await amrOf(pair.access_token)).toEqual(['pwd', 'otp', 'mfa'])
    })

    it('a device login approved from a password-only session carries no mfa', async () => {
      const { email } = await register(app, uniqueEmail('amr-device'))
      const approver = await login(app, email)
      const device = await startDevice(app)
      await approveAs(app.server.tessera, approver.access_token, device.user_code)
      const pair = await tokenPairOf(await poll(app, device.device_code))
      expect(await amrOf(pair.access_token)).toEqual(['pwd'])
    })
  })
}
