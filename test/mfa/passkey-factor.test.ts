/**
 * A passkey as the second factor (README, "Second factors"): the login step and step-up through
 * the API on both dialects, with a software authenticator (test/support/webauthn.ts). The pages'
 * passkey step in Chromium is in passkey-factor-chromium.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { mfaTicketOf } from '../support/mfa.js'
import { expectProblem, PASSWORD, registerAndLogin, tokenPairOf } from '../support/users.js'
import { SoftwareAuthenticator } from '../support/webauthn.js'

const ISSUER = 'http://localhost:8000'

/** The claims of a v4.public token: the base64url body minus its final 64 signature bytes. */
function claimsOf(accessToken: string): Record<string, unknown> {
  const body = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as Record<string, unknown>
}

interface Begun {
  options: { challenge: string; rpId: string; allowCredentials: { id: string }[] }
  challenge: string
  expires_at: string
}

async function begun(res: Response): Promise<Begun> {
  expect(res.status, await res.clone().text()).toBe(200)
  return (await res.json()) as Begun
}

for (const dialect of dialects()) {
  describe(`second factors: a passkey [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { TESSERA_ISSUER: ISSUER, RATE_LIMIT_MFA_PER_ACCOUNT: '3' },
      })
    })
    afterAll(() => app?.close())

    /** A password account with one passkey (and no other second factor). */
    async function withPasskey(options: { backupEligible?: boolean } = {}) {
      const account = await registerAndLogin(app)
      const token = account.tokens.access_token
      const authenticator = new SoftwareAuthenticator(ISSUER, options)
      const registration = await begun(
        await app.request('/v1/user/passkeys/registration-options', { method: 'POST', token }),
      )
      const res = await app.request('/v1/user/passkeys', {
        token,
        json: {
          name: 'Key',
          challenge: registration.challenge,
          response: authenticator.register(registration.options as never),
        },
      })
      expect(res.status, await res.clone().text()).toBe(201)
      return { ...account, token, authenticator }
    }

    const passwordLogin = (email: string) =>
      app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } })
    const stepOptions = async (mfa_ticket: string) =>
      begun(await app.request('/v1/user/auth/mfa/webauthn-options', { json: { mfa_ticket } }))
    const assertion = (authenticator: SoftwareAuthenticator, options: Begun) => ({
      challenge: options.challenge,
      response: authenticator.assert(options.options),
    })

    it('a password account with only a passkey completes the step with an assertion', async () => {
      const { user, authenticator } = await withPasskey()
      const { mfa_ticket, factors } = await mfaTicketOf(await passwordLogin(user.email))
      expect(factors).toEqual(['webauthn'])
      const options = await stepOptions(mfa_ticket)
      expect(options.options.allowCredentials.map((c) => c.id)).toEqual([authenticator.id])
      const pair = await tokenPairOf(
        await app.request('/v1/user/auth/mfa', {
          json: { mfa_ticket, webauthn: assertion(authenticator, options) },
        }),
      )
      expect(claimsOf(pair.access_token).amr).toEqual(['pwd', 'hwk', 'mfa'])
      // The ticket opened its session: it opens no other, and gets no more options.
      const again = await app.request('/v1/user/auth/mfa', {
        json: { mfa_ticket, webauthn: assertion(authenticator, options) },
      })
      await expectProblem(again, 400, 'invalid_mfa_ticket')
      const more = await app.request('/v1/user/auth/mfa/webauthn-options', { json: { mfa_ticket } })
      await expectProblem(more, 400, 'invalid_mfa_ticket')
    })

    it('a synced passkey adds swk', async () => {
      const { user, authenticator } = await withPasskey({ backupEligible: true })
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(user.email))
      const options = await stepOptions(mfa_ticket)
      const pair = await tokenPairOf(
        await app.request('/v1/user/auth/mfa', {
          json: { mfa_ticket, webauthn: assertion(authenticator, options) },
        }),
      )
      expect(claimsOf(pair.access_token).amr).toEqual(['pwd', 'swk', 'mfa'])
    })

    it('a challenge made for another account is refused; the ticket stays usable', async () => {
      const alice = await withPasskey()
      const bob = await withPasskey()
      const aliceTicket = (await mfaTicketOf(await passwordLogin(alice.user.email))).mfa_ticket
      const bobTicket = (await mfaTicketOf(await passwordLogin(bob.user.email))).mfa_ticket
      const aliceOptions = await stepOptions(aliceTicket)
      // Bob's passkey answering Alice's challenge, with Bob's ticket: the challenge is not his.
      const crossed = await app.request('/v1/user/auth/mfa', {
        json: { mfa_ticket: bobTicket, webauthn: assertion(bob.authenticator, aliceOptions) },
      })
      await expectProblem(crossed, 400, 'challenge_expired')
      // Bob's passkey on Bob's own challenge, sent with Alice's ticket: not her passkey.
      const bobOptions = await stepOptions(bobTicket)
      const foreign = await app.request('/v1/user/auth/mfa', {
        json: { mfa_ticket: aliceTicket, webauthn: assertion(bob.authenticator, bobOptions) },
      })
      await expectProblem(foreign, 400, 'challenge_expired')
      const fresh = await stepOptions(bobTicket)
      await tokenPairOf(
        await app.request('/v1/user/auth/mfa', {
          json: { mfa_ticket: bobTicket, webauthn: assertion(bob.authenticator, fresh) },
        }),
      )
    })

    it('options: a bad ticket is invalid_mfa_ticket; no passkey, factor_not_enrolled', async () => {
      const bad = await app.request('/v1/user/auth/mfa/webauthn-options', {
        json: { mfa_ticket: `tessera_mt_${'A'.repeat(43)}` },
      })
      await expectProblem(bad, 400, 'invalid_mfa_ticket')
      const none = await registerAndLogin(app)
      const res = await app.request('/v1/user/mfa/step-up/webauthn-options', {
        method: 'POST',
        token: none.tokens.access_token,
      })
      await expectProblem(res, 400, 'factor_not_enrolled')
      const unauthenticated = await app.request('/v1/user/mfa/step-up/webauthn-options', {
        method: 'POST',
      })
      expect(unauthenticated.status).toBe(401)
    })

    it('options cost a point of the MFA budget; a verified assertion refunds it', async () => {
      const { user, authenticator } = await withPasskey()
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(user.email))
      // Budget 3: one completed attempt gives its point back, two abandoned ones keep theirs.
      const completed = await stepOptions(mfa_ticket)
      const wrong = await app.request('/v1/user/auth/mfa', {
        json: { mfa_ticket, webauthn: assertion(new SoftwareAuthenticator(ISSUER), completed) },
      })
      await expectProblem(wrong, 401, 'passkey_invalid')
      await stepOptions(mfa_ticket)
      const last = await stepOptions(mfa_ticket)
      const over = await app.request('/v1/user/auth/mfa/webauthn-options', { json: { mfa_ticket } })
      await expectProblem(over, 429, 'rate_limited')
      await tokenPairOf(
        await app.request('/v1/user/auth/mfa', {
          json: { mfa_ticket, webauthn: assertion(authenticator, last) },
        }),
      )
    })

    it('the proof is checked for shape: webauthn without a challenge is refused', async () => {
      const { user } = await withPasskey()
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(user.email))
      const res = await app.request('/v1/user/auth/mfa', {
        json: { mfa_ticket, webauthn: { response: {} } },
      })
      await expectProblem(res, 400, 'validation_failed')
    })

    it('step-up with a passkey raises the session: amr gains hwk and mfa', async () => {
      // The token was issued before the passkey was added: a password-only session.
      const { token, authenticator } = await withPasskey()
      expect(claimsOf(token).amr).toEqual(['pwd'])
      const options = await begun(
        await app.request('/v1/user/mfa/step-up/webauthn-options', { method: 'POST', token }),
      )
      const res = await app.request('/v1/user/mfa/step-up', {
        token,
        json: { webauthn: assertion(authenticator, options) },
      })
      expect(res.status, await res.clone().text()).toBe(200)
      const raised = (await res.json()) as { access_token: string }
      expect(claimsOf(raised.access_token).amr).toEqual(['pwd', 'hwk', 'mfa'])
      // The challenge was spent with the step-up.
      const replay = await app.request('/v1/user/mfa/step-up', {
        token,
        json: { webauthn: assertion(authenticator, options) },
      })
      await expectProblem(replay, 400, 'challenge_expired')
    })
  })
}
