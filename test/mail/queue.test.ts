/**
 * The mail queue and its sender (README, "Mail") against a real SMTP server on loopback, the
 * delivered message read with mailparser: a queued mail arrives, a refusing or absent server is
 * retried with backoff and the mail arrives once, STARTTLS is required unless the URL says
 * tls=off, and without SMTP_URL mail lands in the outbox folder as .eml files.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config/index.js'
import { enqueueMail, retryDelayMs } from '../../src/mail/queue.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import { uniqueEmail } from '../support/users.js'

const resetData = (code: string) => ({
  link: `http://localhost:8000/reset-password?token=${code}`,
  code,
  minutes: '30',
})

for (const dialect of dialects()) {
  describe(`the mail queue [${dialect}]`, () => {
    let smtp: TestSmtpServer
    let app: TestApp

    beforeAll(async () => {
      smtp = await startSmtpServer()
      app = await makeTestApp({
        dialect,
        env: {
          SMTP_URL: smtp.url,
          MAIL_FROM: 'Example Lab <accounts@lab.example>',
          PLATFORM_NAME: 'Example Lab',
        },
      })
    })
    afterAll(async () => {
      await app?.close()
      await smtp?.stop()
    })

    const db = () => app.server.tessera.db
    const queued = () => db().selectFrom('mail_queue').selectAll().execute()

    it('a queued mail arrives in text and HTML and leaves the queue', async () => {
      const to = uniqueEmail('queued')
      await enqueueMail(db(), app.clock, {
        to,
        template: 'password-reset',
        data: resetData('code<&>1'),
      })
      const mail = await smtp.waitForMail(to)
      expect(mail.subject).toBe('Reset your Example Lab password')
      expect(mail.from?.value).toEqual([{ name: 'Example Lab', address: 'accounts@lab.example' }])
      expect(mail.text).toContain('code<&>1')
      expect(mail.html).toContain('<code>code&lt;&amp;&gt;1</code>')
      expect(mail.html).toContain('href="http://localhost:8000/reset-password?token=code')
      await app.server.mail.sendDue()
      expect(await queued()).toEqual([])
    })

    it('a mail queued in a transaction that rolls back is never sent', async () => {
      const to = uniqueEmail('rolled-back')
      await expect(
        db()
          .transaction()
          .execute(async (tx) => {
            await enqueueMail(tx, app.clock, { to, template: 'password-reset-unknown', data: {} })
            throw new Error('the change fails')
          }),
      ).rejects.toThrow('the change fails')
      expect(await queued()).toEqual([])
    })

    it('a refusing server is retried with backoff, and the mail arrives once', async () => {
      const to = uniqueEmail('refused')
      smtp.refuse(true)
      try {
        await enqueueMail(db(), app.clock, { to, template: 'password-reset-unknown', data: {} })
        await app.server.mail.sendDue()
        const [row] = await queued()
        expect(row).toMatchObject({ recipient: to, attempts: 1, claim: null })
        expect(Number(row!.next_attempt_at)).toBe(app.clock() + retryDelayMs(1))
        // Not due yet: nothing is tried before the backoff is over.
        await app.server.mail.sendDue()
        expect((await queued())[0]?.attempts).toBe(1)
      } finally {
        smtp.refuse(false)
      }
      app.clock.advance(retryDelayMs(1))
      await app.server.mail.sendDue()
      await smtp.waitForMail(to)
      expect(await queued()).toEqual([])
      await app.server.mail.sendDue()
      expect(smtp.mailTo(to)).toHaveLength(1)
    })

    it('a server that is down is retried once it is back, on the same port', async () => {
      const to = uniqueEmail('down')
      await smtp.down()
      try {
        await enqueueMail(db(), app.clock, { to, template: 'password-reset-unknown', data: {} })
        await app.server.mail.sendDue()
        expect((await queued())[0]?.attempts).toBe(1)
      } finally {
        await smtp.up()
      }
      app.clock.advance(retryDelayMs(1))
      await app.server.mail.sendDue()
      await smtp.waitForMail(to)
      expect(smtp.mailTo(to)).toHaveLength(1)
    })

    it('the backoff doubles from 2 s and stops growing at an hour', () => {
      expect([1, 2, 3, 4].map(retryDelayMs)).toEqual([2_000, 4_000, 8_000, 16_000])
      expect(retryDelayMs(30)).toBe(3_600_000)
    })
  })

  describe(`mail transport settings [${dialect}]`, () => {
    it('smtp:// without tls=off requires STARTTLS: a server without it gets nothing', async () => {
      const smtp = await startSmtpServer()
      const app = await makeTestApp({
        dialect,
        env: { SMTP_URL: `smtp://127.0.0.1:${smtp.port}` },
      })
      try {
        const to = uniqueEmail('starttls')
        const tessera = app.server.tessera
        await enqueueMail(tessera.db, app.clock, {
          to,
          template: 'password-reset-unknown',
          data: {},
        })
        await app.server.mail.sendDue()
        const rows = await tessera.db.selectFrom('mail_queue').selectAll().execute()
        expect(rows.map((r) => r.attempts)).toEqual([1])
        expect(smtp.messages).toEqual([])
      } finally {
        await app.close()
        await smtp.stop()
      }
    })

    it('authenticates with the user and password of the URL', async () => {
      const smtp = await startSmtpServer({ auth: { user: 'tessera', password: 'p@ss word' } })
      const app = await makeTestApp({
        dialect,
        env: { SMTP_URL: `smtp://tessera:p%40ss%20word@127.0.0.1:${smtp.port}?tls=off` },
      })
      try {
        const to = uniqueEmail('auth')
        await enqueueMail(app.server.tessera.db, app.clock, {
          to,
          template: 'password-reset-unknown',
          data: {},
        })
        const mail = await smtp.waitForMail(to)
        expect(mail.subject).toBe('Tessera password reset')
      } finally {
        await app.close()
        await smtp.stop()
      }
    })

    it('without SMTP_URL, mail is written to the outbox folder as .eml files', async () => {
      const outbox = mkdtempSync(join(tmpdir(), 'tessera-outbox-'))
      const app = await makeTestApp({ dialect, env: { MAIL_OUTBOX_DIR: join(outbox, 'mail') } })
      try {
        const to = uniqueEmail('outbox')
        await enqueueMail(app.server.tessera.db, app.clock, {
          to,
          template: 'password-reset',
          data: resetData('outbox-code'),
        })
        await app.server.mail.sendDue()
        const files = readdirSync(join(outbox, 'mail'))
        expect(files).toHaveLength(1)
        expect(files[0]).toMatch(/\.eml$/)
        const file = join(outbox, 'mail', files[0]!)
        expect(statSync(file).mode & 0o777).toBe(0o600)
        const mail = await simpleParser(readFileSync(file))
        expect(mail.to).toMatchObject({ value: [{ address: to }] })
        expect(mail.text).toContain('outbox-code')
      } finally {
        await app.close()
        rmSync(outbox, { recursive: true, force: true })
      }
    })
  })
}

describe('mail configuration', () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env)
    } catch (error) {
      if (error instanceof ConfigError) return error.problems
      throw error
    }
    return []
  }

  it('reads smtp:// and smtps:// with their default ports and TLS modes', () => {
    expect(loadConfig({ SMTP_URL: 'smtp://mail.example' }).mail.smtp).toEqual({
      host: 'mail.example',
      port: 587,
      secure: false,
      startTls: 'required',
    })
    expect(loadConfig({ SMTP_URL: 'smtps://u:p@mail.example' }).mail.smtp).toEqual({
      host: 'mail.example',
      port: 465,
      secure: true,
      startTls: 'required',
      user: 'u',
      password: 'p',
    })
    expect(loadConfig({ SMTP_URL: 'smtp://relay:25?tls=off' }).mail.smtp?.startTls).toBe('off')
  })

  it('refuses other schemes and options without repeating the URL', () => {
    for (const url of [
      'http://mail.example',
      'smtp://user:hunter2secret@mail.example?secure=false',
      'smtps://mail.example?tls=off',
      'smtp://mail.example/path',
    ]) {
      const found = problems({ SMTP_URL: url })
      expect(found, url).toHaveLength(1)
      expect(found[0]).toMatch(/^SMTP_URL /)
      expect(found[0]).not.toContain('hunter2secret')
    }
  })

  it('MAIL_FROM is one address, by default no-reply at the issuer named PLATFORM_NAME', () => {
    expect(loadConfig({ TESSERA_ISSUER: 'https://id.lab.example' }).mail.from).toBe(
      '"Tessera" <no-reply@id.lab.example>',
    )
    expect(loadConfig({ MAIL_FROM: 'Lab <a@lab.example>' }).mail.from).toBe('Lab <a@lab.example>')
    for (const from of ['not an address', 'a@x.example, b@x.example'])
      expect(problems({ MAIL_FROM: from }), from).toHaveLength(1)
    expect(problems({ PLATFORM_NAME: 'Lab <script>' })).toHaveLength(1)
  })
})
