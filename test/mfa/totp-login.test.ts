import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { enrolTotp, loginWithTotp, mfaTicketOf, totpCode } from '../support/mfa.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refreshPair,
  registerAndLogin,
  tokenPairOf,
} from '../support/users.js'

/** The claims of a v4.public token: the base64url body minus its final 64 signature bytes. */
export function claimsOf(accessToken: string): Record<string, unknown> {
  const body = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as Record<string, unknown>
}

function passwordLogin(app: TestApp, email: string): Promise<Response> {
  return app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } })
}

function secondStep(app: TestApp, body: Record<string, unknown>): Promise<Response> {
  return app.request('/v1/user/auth/mfa', { json: body })
}

/** A code that is not `right`. */
function wrongCode(right: string): string {
  return right === '123456' ? '654321' : '123456'
}

/** A user with TOTP enrolled, the clock two steps past the enrolment's (step -1 is unused). */
async function enrolledUser(app: TestApp) {
  const registered = await registerAndLogin(app)
  const enrolled = await enrolTotp(app, registered.tokens.access_token)
  app.clock.advance(60_000)
  return { ...registered, ...enrolled }
}

for (const dialect of dialects()) {
  describe(`second factors: TOTP and the login step [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { RATE_LIMIT_MFA_PER_ACCOUNT: '5' } })
    })
    afterAll(async () => {
      await app?.close()
    })

    it('enrolment shows the secret once, as text and URI; a first code confirms it', async () => {
      const { tokens } = await registerAndLogin(app)
      const started = await app.request('/v1/user/mfa/totp', {
        method: 'POST',
        token: tokens.access_token,
      })
      expect(started.status).toBe(201)
      const body = (await started.json()) as { secret: string; otpauth_uri: string }
      expect(body.secret).toMatch(/^[A-Z2-7]{32}$/)
      expect(body.otpauth_uri).toMatch(/^otpauth:\/\/totp\//)
      expect(body.otpauth_uri).toContain(`secret=${body.secret}`)
      // Pending: no factor yet.
      const status = await app.request('/v1/user/mfa', { token: tokens.access_token })
      expect(await status.json()).toMatchObject({ totp: 'pending', factors: [] })
      await expectProblem(
        await app.request('/v1/user/mfa/totp/confirm', {
          token: tokens.access_token,
          json: { code: wrongCode(totpCode(app, body.secret)) },
        }),
        400,
        'invalid_mfa_code',
      )
      const confirmed = await app.request('/v1/user/mfa/totp/confirm', {
        token: tokens.access_token,
        json: { code: totpCode(app, body.secret) },
      })
      expect(confirmed.status).toBe(200)
      const { recovery_codes } = (await confirmed.json()) as { recovery_codes: string[] }
      expect(recovery_codes).toHaveLength(10)
      expect(new Set(recovery_codes).size).toBe(10)
      // Stored hashed, never as given.
      const rows = await app.server.tessera.db.selectFrom('recovery_codes').selectAll().execute()
      for (const code of recovery_codes) expect(rows.some((r) => r.code_hash === code)).toBe(false)
      const secrets = await app.server.tessera.db
        .selectFrom('totp_credentials')
        .select('secret')
        .execute()
      expect(secrets.some((r) => r.secret === body.secret)).toBe(false)
      await expectProblem(
        await app.request('/v1/user/mfa/totp', { method: 'POST', token: tokens.access_token }),
        409,
        'mfa_already_enrolled',
      )
    })

    it('enrolment needs a recent authentication', async () => {
      const { tokens } = await registerAndLogin(app)
      app.clock.advance(10 * 60_000)
      await expectProblem(
        await app.request('/v1/user/mfa/totp', { method: 'POST', token: tokens.access_token }),
        401,
        'reauthentication_required',
      )
    })

    it('a password login answers mfa_required; ticket and code open the session', async () => {
      const user = await enrolledUser(app)
      const ticket = await mfaTicketOf(await passwordLogin(app, user.email))
      expect(ticket.mfa_ticket).toMatch(/^tessera_mt_[A-Za-z0-9_-]{43}$/)
      expect(ticket.factors).toEqual(['totp', 'recovery_code'])
      const pair = await tokenPairOf(
        await secondStep(app, {
          mfa_ticket: ticket.mfa_ticket,
          totp_code: totpCode(app, user.secret),
        }),
      )
      const claims = claimsOf(pair.access_token)
      expect(claims).toMatchObject({ sub: user.user.id, amr: ['pwd', 'otp', 'mfa'] })
      // A refreshed token carries the session's amr.
      const refreshed = await refreshPair(app, pair.refresh_token)
      expect(claimsOf(refreshed.access_token).amr).toEqual(['pwd', 'otp', 'mfa'])
      const row = await app.server.tessera.db
        .selectFrom('sessions')
        .select('amr')
        .where('id', '=', claims.sid as string)
        .executeTakeFirstOrThrow()
      expect(row.amr).toBe('pwd otp mfa')
    })

    it('an account without a second factor gets tokens with amr [pwd]', async () => {
      const { tokens } = await registerAndLogin(app)
      expect(claimsOf(tokens.access_token).amr).toEqual(['pwd'])
    })

    it('a used time step is refused: the same code cannot sign in twice', async () => {
      const user = await enrolledUser(app)
      const code = totpCode(app, user.secret)
      const first = await mfaTicketOf(await passwordLogin(app, user.email))
      await tokenPairOf(await secondStep(app, { mfa_ticket: first.mfa_ticket, totp_code: code }))
      const second = await mfaTicketOf(await passwordLogin(app, user.email))
      await expectProblem(
        await secondStep(app, { mfa_ticket: second.mfa_ticket, totp_code: code }),
        400,
        'invalid_mfa_code',
      )
      // The previous step is older than the one used: refused too.
      await expectProblem(
        await secondStep(app, {
          mfa_ticket: second.mfa_ticket,
          totp_code: totpCode(app, user.secret, -1),
        }),
        400,
        'invalid_mfa_code',
      )
    })

    it('two concurrent uses of one code: exactly one opens a session', async () => {
      const user = await enrolledUser(app)
      const code = totpCode(app, user.secret)
      const a = await mfaTicketOf(await passwordLogin(app, user.email))
      const b = await mfaTicketOf(await passwordLogin(app, user.email))
      const answers = await Promise.all([
        secondStep(app, { mfa_ticket: a.mfa_ticket, totp_code: code }),
        secondStep(app, { mfa_ticket: b.mfa_ticket, totp_code: code }),
      ])
      expect(answers.map((r) => r.status).sort()).toEqual([200, 400])
    })

    it('the window: steps -1, 0 and +1 are accepted, -2 and +2 refused', async () => {
      for (const [steps, accepted] of [
        [-2, false],
        [2, false],
        [-1, true],
        [0, true],
        [1, true],
      ] as const) {
        const user = await enrolledUser(app)
        const { mfa_ticket } = await mfaTicketOf(await passwordLogin(app, user.email))
        const res = await secondStep(app, {
          mfa_ticket,
          totp_code: totpCode(app, user.secret, steps),
        })
        expect(res.status, `step ${steps}`).toBe(accepted ? 200 : 400)
      }
    })

    it('the ticket is single use', async () => {
      const user = await enrolledUser(app)
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(app, user.email))
      await tokenPairOf(
        await secondStep(app, { mfa_ticket, totp_code: totpCode(app, user.secret) }),
      )
      app.clock.advance(30_000)
      await expectProblem(
        await secondStep(app, { mfa_ticket, totp_code: totpCode(app, user.secret) }),
        400,
        'invalid_mfa_ticket',
      )
    })

    it('the ticket expires after five minutes', async () => {
      const user = await enrolledUser(app)
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(app, user.email))
      app.clock.advance(300_000)
      await expectProblem(
        await secondStep(app, { mfa_ticket, totp_code: totpCode(app, user.secret) }),
        400,
        'invalid_mfa_ticket',
      )
    })

    it('a password change voids a waiting ticket', async () => {
      const user = await enrolledUser(app)
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(app, user.email))
      await app.server.tessera.db
        .updateTable('users')
        .set((eb) => ({ credential_version: eb('credential_version', '+', 1) }))
        .where('id', '=', user.user.id)
        .execute()
      await expectProblem(
        await secondStep(app, { mfa_ticket, totp_code: totpCode(app, user.secret) }),
        401,
        'invalid_credentials',
      )
    })

    it('wrong codes are rate-limited per account; a right one in the budget works', async () => {
      const user = await enrolledUser(app)
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(app, user.email))
      const right = totpCode(app, user.secret)
      for (let i = 0; i < 4; i++) {
        await expectProblem(
          await secondStep(app, { mfa_ticket, totp_code: wrongCode(right) }),
          400,
          'invalid_mfa_code',
        )
      }
      await tokenPairOf(await secondStep(app, { mfa_ticket, totp_code: right }))
      const next = await mfaTicketOf(await passwordLogin(app, user.email))
      await expectProblem(
        await secondStep(app, { mfa_ticket: next.mfa_ticket, totp_code: wrongCode(right) }),
        400,
        'invalid_mfa_code',
      )
      const limited = await secondStep(app, {
        mfa_ticket: next.mfa_ticket,
        totp_code: wrongCode(right),
      })
      await expectProblem(limited, 429, 'rate_limited')
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    })

    it('recovery codes each work once, in any case and with or without the dash', async () => {
      const user = await enrolledUser(app)
      const [code] = user.recoveryCodes
      const first = await mfaTicketOf(await passwordLogin(app, user.email))
      const pair = await tokenPairOf(
        await secondStep(app, { mfa_ticket: first.mfa_ticket, recovery_code: code }),
      )
      expect(claimsOf(pair.access_token).amr).toEqual(['pwd', 'otp', 'mfa'])
      const second = await mfaTicketOf(await passwordLogin(app, user.email))
      await expectProblem(
        await secondStep(app, { mfa_ticket: second.mfa_ticket, recovery_code: code }),
        400,
        'invalid_mfa_code',
      )
      const other = user.recoveryCodes[1]!.replace('-', '').toLowerCase()
      await tokenPairOf(
        await secondStep(app, { mfa_ticket: second.mfa_ticket, recovery_code: other }),
      )
      const events = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('detail')
        .where('event', '=', 'recovery_code_used')
        .where('user_id', '=', user.user.id)
        .execute()
      expect(events.map((e) => JSON.parse(e.detail!))).toEqual([{ remaining: 9 }, { remaining: 8 }])
    })

    it('recovery codes can be made anew; the old ones stop working', async () => {
      const user = await enrolledUser(app)
      const pair = await loginWithTotp(app, user.email, user.secret, 0)
      const res = await app.request('/v1/user/mfa/recovery-codes', {
        method: 'POST',
        token: pair.access_token,
      })
      expect(res.status).toBe(200)
      const { recovery_codes } = (await res.json()) as { recovery_codes: string[] }
      expect(recovery_codes).toHaveLength(10)
      const ticket = await mfaTicketOf(await passwordLogin(app, user.email))
      await expectProblem(
        await secondStep(app, {
          mfa_ticket: ticket.mfa_ticket,
          recovery_code: user.recoveryCodes[0],
        }),
        400,
        'invalid_mfa_code',
      )
      await tokenPairOf(
        await secondStep(app, { mfa_ticket: ticket.mfa_ticket, recovery_code: recovery_codes[0] }),
      )
    })

    it('exactly one factor per request, each of its shape', async () => {
      const user = await enrolledUser(app)
      const { mfa_ticket } = await mfaTicketOf(await passwordLogin(app, user.email))
      await expectProblem(await secondStep(app, { mfa_ticket }), 400, 'validation_failed')
      await expectProblem(
        await secondStep(app, { mfa_ticket, totp_code: '123456', recovery_code: 'x' }),
        400,
        'validation_failed',
      )
      await expectProblem(
        await secondStep(app, { mfa_ticket, webauthn: { id: 'x' } }),
        400,
        'validation_failed',
      )
    })

    it('removing TOTP with a fresh code: the next login is password only again', async () => {
      const user = await enrolledUser(app)
      const pair = await loginWithTotp(app, user.email, user.secret, 0)
      app.clock.advance(30_000)
      const removed = await app.request('/v1/user/mfa/totp', {
        method: 'DELETE',
        token: pair.access_token,
        json: { code: totpCode(app, user.secret) },
      })
      expect(removed.status, await removed.clone().text()).toBe(204)
      const again = await login(app, user.email)
      expect(claimsOf(again.access_token).amr).toEqual(['pwd'])
    })

    it('step-up raises a password-only session to MFA without logging out', async () => {
      const { tokens } = await registerAndLogin(app)
      const { secret } = await enrolTotp(app, tokens.access_token)
      // The enrolment spent this step's code.
      await expectProblem(
        await app.request('/v1/user/mfa/step-up', {
          token: tokens.access_token,
          json: { totp_code: totpCode(app, secret) },
        }),
        400,
        'invalid_mfa_code',
      )
      const raised = await app.request('/v1/user/mfa/step-up', {
        token: tokens.access_token,
        json: { totp_code: totpCode(app, secret, 1) },
      })
      expect(raised.status, await raised.clone().text()).toBe(200)
      const body = (await raised.json()) as { access_token: string }
      expect(claimsOf(body.access_token)).toMatchObject({
        sid: claimsOf(tokens.access_token).sid,
        amr: ['pwd', 'otp', 'mfa'],
      })
      // The same session's refresh token now mints MFA tokens.
      const refreshed = await refreshPair(app, tokens.refresh_token)
      expect(claimsOf(refreshed.access_token).amr).toEqual(['pwd', 'otp', 'mfa'])
    })
  })
}
