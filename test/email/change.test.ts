/**
 * Email change (README, "Email verification and change") against a real SMTP server on loopback:
 * the current password (or a recent authentication) is required, a confirmation goes to the new
 * address and a notice with a cancellation to the old one, the account switches only at the
 * confirmation (then verified), the old address can cancel, every step is audited, and two
 * accounts confirming one address at once through the real app: exactly one wins, the other
 * answers `email_taken`.
 */
import type { ParsedMail } from 'mailparser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHANGE_TOKEN_TTL_SECONDS } from '../../src/accounts/email-tokens.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import { expectProblem, login, PASSWORD, registerAndLogin, uniqueEmail } from '../support/users.js'

const tokenIn = (mail: ParsedMail, prefix: 'tessera_ec_' | 'tessera_ex_') => {
  const token = new RegExp(`${prefix}[A-Za-z0-9_-]{43}`).exec(mail.text ?? '')?.[0]
  expect(token, mail.text).toBeDefined()
  expect(mail.text).toContain(`/email-change?token=${token}`)
  return token!
}

for (const dialect of dialects()) {
  describe(`email change [${dialect}]`, () => {
    let smtp: TestSmtpServer
    let app: TestApp

    beforeAll(async () => {
      smtp = await startSmtpServer()
      app = await makeTestApp({
        dialect,
        env: { SMTP_URL: smtp.url, RATE_LIMIT_LOGIN_PER_IP: '0', RATE_LIMIT_REGISTER_PER_IP: '0' },
      })
    })
    afterAll(async () => {
      await app?.close()
      await smtp?.stop()
    })

    const me = async (token: string) =>
      (await (await app.request('/v1/user/me', { token })).json()) as Record<string, unknown>

    const events = async (userId: string) =>
      (
        await app.server.tessera.db
          .selectFrom('audit_events')
          .select('event')
          .where('user_id', '=', userId)
          .orderBy('at')
          .execute()
      ).map((e) => e.event)

    /** A registered, signed-in account whose verification mail has been read. */
    async function account() {
      const registered = await registerAndLogin(app)
      await smtp.waitForMail(registered.email)
      return registered
    }

    async function requestChange(token: string, email: string, password = PASSWORD) {
      return app.request('/v1/user/email/change', {
        token,
        json: { email, current_password: password },
      })
    }

    /** Asks for a change and reads both mails: the confirmation and the cancellation tokens. */
    async function changeTo(from: { email: string; tokens: { access_token: string } }, to: string) {
      const res = await requestChange(from.tokens.access_token, to)
      expect(res.status, await res.clone().text()).toBe(202)
      const confirm = await smtp.waitForMail(to)
      const notice = await smtp.waitForMail(from.email)
      return {
        res,
        confirm: tokenIn(confirm, 'tessera_ec_'),
        cancel: tokenIn(notice, 'tessera_ex_'),
      }
    }

    it('switches only when the new address confirms, and the new address is verified', async () => {
      const a = await account()
      const next = uniqueEmail('moved')
      const { res, confirm } = await changeTo(a, next)
      expect(await res.json()).toEqual({ email: next, expires_at: expect.any(String) })
      expect(await me(a.tokens.access_token)).toMatchObject({ email: a.email })

      const ok = await app.request('/v1/user/email/change/confirm', { json: { token: confirm } })
      expect(ok.status, await ok.text()).toBe(204)
      expect(await me(a.tokens.access_token)).toMatchObject({ email: next, email_verified: true })
      await login(app, next)
      await expectProblem(
        await app.request('/v1/user/auth/login', { json: { email: a.email, password: PASSWORD } }),
        401,
        'invalid_credentials',
      )
      await expectProblem(
        await app.request('/v1/user/email/change/confirm', { json: { token: confirm } }),
        400,
        'invalid_email_token',
      )
      expect(await events(a.user.id)).toEqual(
        expect.arrayContaining(['email_change_requested', 'email_changed']),
      )
    })

    it('the notice to the old address cancels the change', async () => {
      const a = await account()
      const next = uniqueEmail('hijack')
      const { confirm, cancel } = await changeTo(a, next)
      const res = await app.request('/v1/user/email/change/cancel', { json: { token: cancel } })
      expect(res.status, await res.text()).toBe(204)
      await expectProblem(
        await app.request('/v1/user/email/change/confirm', { json: { token: confirm } }),
        400,
        'invalid_email_token',
      )
      expect(await me(a.tokens.access_token)).toMatchObject({ email: a.email })
      expect(await events(a.user.id)).toEqual(
        expect.arrayContaining(['email_change_requested', 'email_change_cancelled']),
      )
      // A confirmation cannot be used as a cancellation, nor the reverse.
      await expectProblem(
        await app.request('/v1/user/email/change/cancel', { json: { token: confirm } }),
        400,
        'invalid_email_token',
      )
    })

    it('needs the current password; a taken or unchanged address is refused at once', async () => {
      const a = await account()
      const b = await account()
      await expectProblem(
        await requestChange(a.tokens.access_token, uniqueEmail(), `${PASSWORD}x`),
        401,
        'invalid_credentials',
      )
      await expectProblem(
        await app.request('/v1/user/email/change', {
          token: a.tokens.access_token,
          json: { email: uniqueEmail() },
        }),
        401,
        'invalid_credentials',
      )
      await expectProblem(
        await requestChange(a.tokens.access_token, b.email.toUpperCase()),
        409,
        'email_taken',
      )
      await expectProblem(
        await requestChange(a.tokens.access_token, a.email),
        400,
        'validation_failed',
      )
      await expectProblem(
        await app.request('/v1/user/email/change', { json: { email: uniqueEmail() } }),
        401,
        'unauthorized',
      )
    })

    it('a newer request voids the pending one; confirmations expire after an hour', async () => {
      const a = await account()
      const first = await changeTo(a, uniqueEmail('first'))
      const second = await changeTo(a, uniqueEmail('second'))
      for (const token of [first.confirm]) {
        await expectProblem(
          await app.request('/v1/user/email/change/confirm', { json: { token } }),
          400,
          'invalid_email_token',
        )
      }
      app.clock.advance(CHANGE_TOKEN_TTL_SECONDS * 1000 + 1)
      try {
        await expectProblem(
          await app.request('/v1/user/email/change/confirm', { json: { token: second.confirm } }),
          400,
          'invalid_email_token',
        )
      } finally {
        app.clock.advance(-(CHANGE_TOKEN_TTL_SECONDS * 1000 + 1))
      }
    })

    it('two accounts confirming one address at once: exactly one wins', async () => {
      const target = uniqueEmail('contested')
      const [a, b] = await Promise.all([account(), account()])
      const ra = await requestChange(a.tokens.access_token, target)
      expect(ra.status, await ra.clone().text()).toBe(202)
      const rb = await requestChange(b.tokens.access_token, target)
      expect(rb.status, await rb.clone().text()).toBe(202)
      const tokens = [
        tokenIn(await smtp.waitForMail(target), 'tessera_ec_'),
        tokenIn(await smtp.waitForMail(target), 'tessera_ec_'),
      ]
      const answers = await Promise.all(
        tokens.map((token) => app.request('/v1/user/email/change/confirm', { json: { token } })),
      )
      const statuses = answers.map((r) => r.status).sort()
      expect(statuses).toEqual([204, 409])
      const loser = answers.find((r) => r.status === 409)!
      await expectProblem(loser, 409, 'email_taken')
      const owners = await app.server.tessera.db
        .selectFrom('users')
        .select('id')
        .where('email_normalized', '=', target.toLowerCase())
        .execute()
      expect(owners).toHaveLength(1)
      expect([a.user.id, b.user.id]).toContain(owners[0]!.id)
      const loserId = owners[0]!.id === a.user.id ? b.user.id : a.user.id
      expect(await events(loserId)).toContain('email_change_refused')
    })
  })
}
