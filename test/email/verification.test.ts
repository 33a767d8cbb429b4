/**
 * Email verification (README, "Email verification and change") against a real SMTP server on
 * loopback, each mail read with mailparser: the registration mail's code verifies the address
 * (in /v1/user/me, the access token and introspection, apart from academic `verified`); tokens
 * are single use, expire, are voided by a newer mail and never verify an address the account no
 * longer has; "send again" answers alike for every address; REQUIRE_VERIFIED_EMAIL refuses the
 * password sign-in of an unverified account with `email_not_verified`; no token reaches a log.
 */
import type { ParsedMail } from 'mailparser'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { VERIFY_TOKEN_TTL_SECONDS } from '../../src/accounts/email-tokens.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import {
  expectProblem,
  login,
  PASSWORD,
  register,
  tokenPairOf,
  uniqueEmail,
} from '../support/users.js'

const SERVICE_SECRET = 'email-test-service-secret-0123456789'
const VERIFY_CODE = /tessera_ev_[A-Za-z0-9_-]{43}/

/** The code a verification mail carries, checked to be the same token as its link's. */
export function verificationCode(mail: ParsedMail): string {
  const code = VERIFY_CODE.exec(mail.text ?? '')?.[0]
  expect(code, mail.text).toBeDefined()
  expect(mail.text).toContain(`/verify-email?token=${code}`)
  expect(mail.html).toContain(`<code>${code}</code>`)
  return code!
}

const claimsOf = (token: string) =>
  JSON.parse(
    Buffer.from(token.split('.')[2]!, 'base64url').subarray(0, -64).toString('utf8'),
  ) as Record<string, unknown>

for (const dialect of dialects()) {
  describe(`email verification [${dialect}]`, () => {
    let smtp: TestSmtpServer
    let app: TestApp
    let strict: TestApp
    const logLines: string[] = []
    const tokensSeen = new Set<string>()

    beforeAll(async () => {
      smtp = await startSmtpServer()
      const logger = pino({ level: 'debug' }, { write: (line: string) => logLines.push(line) })
      ;[app, strict] = await Promise.all([
        makeTestApp({
          dialect,
          logger,
          env: {
            SMTP_URL: smtp.url,
            PLATFORM_NAME: 'Example Lab',
            RATE_LIMIT_LOGIN_PER_IP: '0',
            SERVICE_SECRET,
          },
        }),
        makeTestApp({
          dialect,
          logger,
          env: {
            SMTP_URL: smtp.url,
            REQUIRE_VERIFIED_EMAIL: 'true',
            RATE_LIMIT_EMAIL_PER_ADDRESS: '2',
          },
        }),
      ])
    })
    afterAll(async () => {
      await app?.close()
      await strict?.close()
      await smtp?.stop()
    })

    async function codeFor(email: string): Promise<string> {
      const code = verificationCode(await smtp.waitForMail(email))
      tokensSeen.add(code)
      return code
    }

    const me = async (a: TestApp, token: string) =>
      (await (await a.request('/v1/user/me', { token })).json()) as Record<string, unknown>

    it('registration mails a link and a code; the code verifies the address', async () => {
      const { email, user } = await register(app)
      expect(user).toMatchObject({ email_verified: false, verified: false })
      const mail = await smtp.waitForMail(email)
      expect(mail.subject).toBe('Verify your Example Lab email address')
      const code = verificationCode(mail)
      tokensSeen.add(code)

      const before = await login(app, email)
      expect(claimsOf(before.access_token)).toMatchObject({ email_verified: false })

      const res = await app.request('/v1/user/email/verify', { json: { token: code } })
      expect(res.status, await res.text()).toBe(204)

      expect(await me(app, before.access_token)).toMatchObject({
        email_verified: true,
        verified: false,
      })
      const after = await login(app, email)
      expect(claimsOf(after.access_token)).toMatchObject({ email_verified: true, verified: false })
      const introspected = await app.request('/v1/token/introspect', {
        json: { token: after.access_token },
        headers: { 'x-service-secret': SERVICE_SECRET },
      })
      expect(await introspected.json()).toMatchObject({
        active: true,
        email_verified: true,
        verified: false,
      })
      const events = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('event')
        .where('user_id', '=', user.id)
        .execute()
      expect(events.map((e) => e.event)).toEqual(
        expect.arrayContaining(['email_verification_sent', 'email_verified']),
      )
    })

    it('a code works once; forged and other-purpose tokens are alike refused', async () => {
      const { email } = await register(app)
      const code = await codeFor(email)
      expect((await app.request('/v1/user/email/verify', { json: { token: code } })).status).toBe(
        204,
      )
      for (const token of [
        code,
        `tessera_ev_${'A'.repeat(43)}`,
        code.replace('tessera_ev_', 'tessera_ec_'),
        'not-a-token',
      ]) {
        await expectProblem(
          await app.request('/v1/user/email/verify', { json: { token } }),
          400,
          'invalid_email_token',
        )
      }
      await expectProblem(
        await app.request('/v1/user/email/verify', { json: { token: 'x'.repeat(65) } }),
        400,
        'validation_failed',
      )
    })

    it('a code expires after 24 hours', async () => {
      const { email } = await register(app)
      const code = await codeFor(email)
      app.clock.advance(VERIFY_TOKEN_TTL_SECONDS * 1000 + 1)
      try {
        await expectProblem(
          await app.request('/v1/user/email/verify', { json: { token: code } }),
          400,
          'invalid_email_token',
        )
      } finally {
        app.clock.advance(-(VERIFY_TOKEN_TTL_SECONDS * 1000 + 1))
      }
    })

    it('"send again" voids the older code, and answers alike for unknown addresses', async () => {
      const { email } = await register(app)
      const first = await codeFor(email)
      const again = await app.request('/v1/user/email/verify/send', { json: { email } })
      expect(again.status).toBe(202)
      const second = await codeFor(email)
      expect(second).not.toBe(first)
      await expectProblem(
        await app.request('/v1/user/email/verify', { json: { token: first } }),
        400,
        'invalid_email_token',
      )
      const unknown = await app.request('/v1/user/email/verify/send', {
        json: { email: uniqueEmail('nobody') },
      })
      expect(unknown.status).toBe(202)
      expect(await unknown.text()).toBe(await again.clone().text())
      expect((await app.request('/v1/user/email/verify', { json: { token: second } })).status).toBe(
        204,
      )
      // Verified: no further mail, the same answer.
      expect((await app.request('/v1/user/email/verify/send', { json: { email } })).status).toBe(
        202,
      )
      await app.server.mail.sendDue()
      expect(smtp.mailTo(email)).toHaveLength(2)
    })

    it('REQUIRE_VERIFIED_EMAIL refuses unverified password sign-in until verified', async () => {
      const email = uniqueEmail('strict')
      await register(strict, email)
      const code = await codeFor(email)
      await expectProblem(
        await strict.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
        403,
        'email_not_verified',
      )
      // Only the right password learns it.
      await expectProblem(
        await strict.request('/v1/user/auth/login', { json: { email, password: `${PASSWORD}x` } }),
        401,
        'invalid_credentials',
      )
      expect(
        (await strict.request('/v1/user/email/verify', { json: { token: code } })).status,
      ).toBe(204)
      tokenPairOf(
        await strict.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
      )
    })

    it('"send again" is limited per recipient address', async () => {
      const email = uniqueEmail('limited')
      await register(strict, email)
      await codeFor(email)
      for (let i = 0; i < 2; i++) {
        const res = await strict.request('/v1/user/email/verify/send', { json: { email } })
        expect(res.status).toBe(202)
      }
      await expectProblem(
        await strict.request('/v1/user/email/verify/send', { json: { email } }),
        429,
        'rate_limited',
      )
    })

    it('no verification token appears in any log line', async () => {
      await app.server.mail.sendDue()
      for (const message of smtp.messages) {
        const code = VERIFY_CODE.exec(message.text ?? '')?.[0]
        if (code !== undefined) tokensSeen.add(code)
      }
      expect(tokensSeen.size).toBeGreaterThan(5)
      const log = logLines.join('\n')
      expect(log).toContain('/v1/user/email/verify')
      for (const token of tokensSeen) expect(log).not.toContain(token.slice('tessera_ev_'.length))
    })
  })
}
