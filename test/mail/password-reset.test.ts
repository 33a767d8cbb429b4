/**
 * Password reset over a real SMTP server (README, "Password reset"): the forgot request answers
 * the same for every address and queues a mail for each; the mailed code resets the password
 * once, within 30 minutes, unless a password change or a newer request voided it; a reset ends
 * every session and mails a notice; federated-only accounts are told how they sign in; the rate
 * limits never make the owner's link useless; no token reaches a log line.
 */
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RESET_TTL_MS } from '../../src/accounts/password-reset.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { resetCodeOf, resetLinkOf } from '../support/mail.js'
import { runCli } from '../support/process.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  registerAndLogin as registerAndLoginUser,
  register as registerUser,
  uniqueEmail,
} from '../support/users.js'

const NEW_PASSWORD = 'freshly-chosen-harbour-lights-7'

for (const dialect of dialects()) {
  describe(`password reset [${dialect}]`, () => {
    let smtp: TestSmtpServer
    let app: TestApp
    const lines: string[] = []
    // Registration mails a verification first (README, "Email verification and change").
    const register = async (a: TestApp, email: string) => {
      const registered = await registerUser(a, email)
      await smtp.waitForMail(email)
      return registered
    }
    const registerAndLogin = async (a: TestApp, email: string) => {
      const registered = await registerAndLoginUser(a, email)
      await smtp.waitForMail(email)
      return registered
    }

    beforeAll(async () => {
      smtp = await startSmtpServer()
      app = await makeTestApp({
        dialect,
        env: { SMTP_URL: smtp.url, PLATFORM_NAME: 'Example Lab', LOG_LEVEL: 'info' },
        logger: pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) }),
        mailPollMs: 50,
      })
    })
    afterAll(async () => {
      await app?.close()
      await smtp?.stop()
    })

    const forgot = (email: string) =>
      app.request('/v1/user/auth/password/forgot', { json: { email } })
    const reset = (token: string, password = NEW_PASSWORD) =>
      app.request('/v1/user/auth/password/reset', { json: { token, new_password: password } })

    async function requestCode(email: string): Promise<string> {
      expect((await forgot(email)).status).toBe(202)
      return resetCodeOf(await smtp.waitForMail(email))
    }

    it('forgot → mail → reset: the new password works, the old sessions are dead', async () => {
      const { email, tokens } = await registerAndLogin(app, uniqueEmail('reset'))
      const res = await forgot(email)
      expect(res.status).toBe(202)
      const mail = await smtp.waitForMail(email)
      expect(mail.subject).toBe('Reset your Example Lab password')
      const code = resetCodeOf(mail)
      expect(resetLinkOf(mail)).toBe(
        `${app.server.tessera.config.issuer}/reset-password?token=${code}`,
      )

      expect((await reset(code)).status).toBe(204)
      await login(app, email, NEW_PASSWORD)
      await expectProblem(
        await app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
        401,
        'invalid_credentials',
      )
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'invalid_refresh_token')
      const me = await app.request('/v1/user/me', { token: tokens.access_token })
      expect(me.status).toBe(401)

      const notice = await smtp.waitForMail(email)
      expect(notice.subject).toBe('Your Example Lab password was reset')
    })

    it('known and unknown addresses get the same answer, and each gets a mail', async () => {
      const { email } = await register(app, uniqueEmail('known'))
      const unknown = uniqueEmail('unknown')
      const [a, b] = [await forgot(email), await forgot(unknown)]
      expect([a.status, b.status]).toEqual([202, 202])
      expect(await a.text()).toBe(await b.text())
      expect([...a.headers.keys()].sort()).toEqual([...b.headers.keys()].sort())
      expect((await smtp.waitForMail(email)).subject).toBe('Reset your Example Lab password')
      const other = await smtp.waitForMail(unknown)
      expect(other.subject).toBe('Example Lab password reset')
      expect(other.text).not.toMatch(/tessera_pr_/)
    })

    it('a token works once', async () => {
      const { email } = await register(app, uniqueEmail('once'))
      const code = await requestCode(email)
      expect((await reset(code)).status).toBe(204)
      await expectProblem(
        await reset(code, 'yet-another-fine-password-3'),
        400,
        'invalid_reset_token',
      )
      await login(app, email, NEW_PASSWORD)
    })

    it('six resets racing with one token: exactly one sets its password', async () => {
      const { email } = await register(app, uniqueEmail('race'))
      const code = await requestCode(email)
      const passwords = Array.from({ length: 6 }, (_, i) => `racing-passphrase-number-${i}-x`)
      const answers = await Promise.all(passwords.map((p) => reset(code, p)))
      const statuses = answers.map((a) => a.status)
      expect(statuses.filter((s) => s === 204)).toHaveLength(1)
      expect(statuses.filter((s) => s === 400)).toHaveLength(5)
      const winner = passwords[statuses.indexOf(204)]!
      await login(app, email, winner)
    })

    it('a token expires after 30 minutes', async () => {
      const { email } = await register(app, uniqueEmail('expired'))
      const code = await requestCode(email)
      app.clock.advance(RESET_TTL_MS)
      try {
        await expectProblem(await reset(code), 400, 'invalid_reset_token')
      } finally {
        app.clock.advance(-RESET_TTL_MS)
      }
      await login(app, email)
    })

    it('a newer request voids the older token', async () => {
      const { email } = await register(app, uniqueEmail('superseded'))
      const first = await requestCode(email)
      const second = await requestCode(email)
      await expectProblem(await reset(first), 400, 'invalid_reset_token')
      expect((await reset(second)).status).toBe(204)
    })

    it('a password change voids the token', async () => {
      const { email, tokens } = await registerAndLogin(app, uniqueEmail('changed'))
      const code = await requestCode(email)
      const changed = await app.request('/v1/user/password', {
        token: tokens.access_token,
        json: { current_password: PASSWORD, new_password: 'changed-by-the-owner-meanwhile-5' },
      })
      expect(changed.status).toBe(204)
      await expectProblem(await reset(code), 400, 'invalid_reset_token')
    })

    it('forged and malformed tokens are refused', async () => {
      const forged = `tessera_pr_${randomBytes(32).toString('base64url')}`
      await expectProblem(await reset(forged), 400, 'invalid_reset_token')
      for (const token of ['', 'x'.repeat(129), 'tessera_pr_<script>', 42, null]) {
        const res = await app.request('/v1/user/auth/password/reset', {
          json: { token, new_password: NEW_PASSWORD },
        })
        await expectProblem(res, 400, 'validation_failed')
      }
    })

    it('a weak new password is refused and leaves the token usable', async () => {
      const { email } = await register(app, uniqueEmail('weak'))
      const code = await requestCode(email)
      await expectProblem(await reset(code, 'password'), 400, 'weak_password')
      expect((await reset(code)).status).toBe(204)
    })

    it('a disabled account gets no token, only the mail an unknown address gets', async () => {
      const { email, user } = await register(app, uniqueEmail('disabled'))
      await app.server.tessera.db
        .updateTable('users')
        .set({ disabled: 1 })
        .where('id', '=', user.id)
        .execute()
      expect((await forgot(email)).status).toBe(202)
      expect((await smtp.waitForMail(email)).subject).toBe('Example Lab password reset')
    })

    it('a federated-only account is told how it signs in, and gets no token', async () => {
      const { email, user } = await register(app, uniqueEmail('federated'))
      const db = app.server.tessera.db
      await db.updateTable('users').set({ password_hash: null }).where('id', '=', user.id).execute()
      await db
        .insertInto('identities')
        .values({
          provider: 'github',
          subject: `gh-${user.id}`,
          user_id: user.id,
          email,
          created_at: app.clock(),
        })
        .execute()
      const res = await forgot(email)
      expect(res.status).toBe(202)
      const mail = await smtp.waitForMail(email)
      expect(mail.subject).toBe('How you sign in to Example Lab')
      expect(mail.text).toContain('it signs in with GitHub')
      expect(mail.text).not.toMatch(/tessera_pr_/)
      const tokens = await db
        .selectFrom('password_resets')
        .select('token_hash')
        .where('user_id', '=', user.id)
        .execute()
      expect(tokens).toEqual([])
    })

    it('the request and the reset are audited, without a token', async () => {
      const { email, user } = await register(app, uniqueEmail('audited'))
      const code = await requestCode(email)
      expect((await reset(code)).status).toBe(204)
      const events = await app.server.tessera.db
        .selectFrom('audit_events')
        .select(['event', 'detail'])
        .where('user_id', '=', user.id)
        .orderBy('at')
        .execute()
      const names = events.map((e) => e.event)
      expect(names).toContain('password_reset_requested')
      expect(names).toContain('password_reset')
      expect(JSON.stringify(events)).not.toContain(code)
    })

    it('tessera user reset-password queues the mail; the running server sends it', async () => {
      const { email } = await register(app, uniqueEmail('cli'))
      const result = await runCli(['user', 'reset-password', '--email', email], {
        databaseUrl: app.databaseUrl,
      })
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toContain('is queued')
      // The command queued it by the real clock; the server's test clock catches up.
      app.clock.set(Math.max(app.clock(), Date.now()))
      const code = resetCodeOf(await smtp.waitForMail(email))
      expect((await reset(code)).status).toBe(204)
      const unknown = await runCli(['user', 'reset-password', '--email', uniqueEmail('none')], {
        databaseUrl: app.databaseUrl,
      })
      expect(unknown.code).toBe(1)
    })

    it('the queue holds the link and code sealed until the mail is sent', async () => {
      const { email } = await register(app, uniqueEmail('sealed'))
      smtp.refuse(true)
      try {
        expect((await forgot(email)).status).toBe(202)
        await app.server.mail.sendDue()
        const row = await app.server.tessera.db
          .selectFrom('mail_queue')
          .select(['data', 'attempts'])
          .where('recipient', '=', email)
          .executeTakeFirstOrThrow()
        expect(row.attempts).toBe(1)
        expect(row.data).not.toContain('tessera_pr_')
        expect(row.data).not.toContain('/reset-password')
      } finally {
        smtp.refuse(false)
      }
      app.clock.advance(60_000)
      const code = resetCodeOf(await smtp.waitForMail(email))
      expect((await reset(code)).status).toBe(204)
    })

    it('no reset token or code appears in any log line', async () => {
      const { email } = await register(app, uniqueEmail('logs'))
      expect((await forgot(email)).status).toBe(202)
      const mail = await smtp.waitForMail(email)
      const code = resetCodeOf(mail)
      // The link's page request too: the token arrives in its query.
      const page = await fetch(
        resetLinkOf(mail).replace(app.server.tessera.config.issuer, app.url),
        {
          redirect: 'manual',
          headers: { accept: 'text/html' },
        },
      )
      expect(page.status).toBe(303)
      expect(page.headers.get('location')).toBe('/reset-password')
      expect((await reset(code)).status).toBe(204)
      await smtp.waitForMail(email)
      expect(lines.length).toBeGreaterThan(0)
      expect(lines.some((l) => l.includes('/reset-password'))).toBe(true)
      const secretPart = code.slice('tessera_pr_'.length)
      for (const line of lines) expect(line).not.toContain(secretPart)
    })
  })

  describe(`password reset rate limits [${dialect}]`, () => {
    let smtp: TestSmtpServer
    let app: TestApp
    // Registration mails a verification first (README, "Email verification and change").
    const register = async (a: TestApp, email: string) => {
      const registered = await registerUser(a, email)
      await smtp.waitForMail(email)
      return registered
    }

    beforeAll(async () => {
      smtp = await startSmtpServer()
      app = await makeTestApp({
        dialect,
        env: {
          SMTP_URL: smtp.url,
          RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS: '2',
          RATE_LIMIT_PASSWORD_RESET_PER_IP: '6',
        },
        mailPollMs: 50,
      })
    })
    afterAll(async () => {
      await app?.close()
      await smtp?.stop()
    })

    const forgot = (email: string) =>
      app.request('/v1/user/auth/password/forgot', { json: { email } })

    it('over the address budget: the same 202, no more mail, the last link works', async () => {
      const { email } = await register(app, uniqueEmail('flooded'))
      const answers = []
      for (let i = 0; i < 4; i++) answers.push(await forgot(email))
      expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202])
      const bodies = await Promise.all(answers.map((a) => a.text()))
      expect(new Set(bodies).size).toBe(1)
      await smtp.waitForMail(email)
      const last = resetCodeOf(await smtp.waitForMail(email))
      await app.server.mail.sendDue()
      // The verification mail of the registration, and two reset mails.
      expect(smtp.mailTo(email)).toHaveLength(3)
      const res = await app.request('/v1/user/auth/password/reset', {
        json: { token: last, new_password: NEW_PASSWORD },
      })
      expect(res.status).toBe(204)
    })

    it('over the client budget: 429 rate_limited with Retry-After', async () => {
      // 4 of the 6 requests of this address were used above.
      for (let i = 0; i < 2; i++) expect((await forgot(uniqueEmail('client'))).status).toBe(202)
      const res = await forgot(uniqueEmail('client'))
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
      await expectProblem(res, 429, 'rate_limited')
    })
  })
}
