/**
 * The mail queue with two `tessera serve` processes on one PostgreSQL database (README, "Mail"):
 * requests made while the SMTP server is down still answer 202 at once; once it is back, every
 * queued mail is delivered exactly once although both replicas' senders look at the queue, and a
 * code mailed through one replica resets the password on the other.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { resetCodeOf } from '../support/mail.js'
import { startTesseraProcess, type TesseraProcess } from '../support/process.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import { PASSWORD, tokenPairOf, uniqueEmail } from '../support/users.js'

const POSTGRES = dialects().includes('postgres')
const NEW_PASSWORD = 'replicated-recovery-passphrase-4'

describe.skipIf(!POSTGRES)('the mail queue across two replicas [postgres]', () => {
  let database: TestDatabase
  let smtp: TestSmtpServer
  let a: TesseraProcess
  let b: TesseraProcess

  beforeAll(async () => {
    database = await createTestDatabase('postgres')
    smtp = await startSmtpServer()
    const env = {
      KEY_ENCRYPTION_KEY: 'mail-replicas-key-encryption-key-0123456789',
      SMTP_URL: smtp.url,
      RATE_LIMIT_PASSWORD_RESET_PER_IP: '0',
    }
    a = await startTesseraProcess({ databaseUrl: database.url, env })
    b = await startTesseraProcess({ databaseUrl: database.url, env })
  }, 60_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await smtp?.stop()
    await database?.drop()
  })

  async function queued(): Promise<number> {
    const client = new pg.Client({ connectionString: database.url })
    await client.connect()
    try {
      const { rows } = await client.query<{ n: string }>('select count(*) as n from mail_queue')
      return Number(rows[0]!.n)
    } finally {
      await client.end()
    }
  }

  it('SMTP down: 202 at once; back: each mail delivered exactly once', async () => {
    const email = uniqueEmail('replica-reset')
    const registered = await a.request('/v1/user/auth/register', {
      json: { email, password: PASSWORD },
    })
    expect(registered.status).toBe(201)
    // Registration mails a verification first (README, "Email verification and change").
    await smtp.waitForMail(email, 30_000)
    const others = Array.from({ length: 6 }, () => uniqueEmail('replica-unknown'))

    await smtp.down()
    for (const [i, to] of [email, ...others].entries()) {
      const replica = i % 2 === 0 ? a : b
      const res = await replica.request('/v1/user/auth/password/forgot', { json: { email: to } })
      expect(res.status).toBe(202)
    }
    // Both senders try (and fail) while the server is down; the mails wait in the queue.
    await expect.poll(queued, { timeout: 10_000 }).toBe(7)
    const client = new pg.Client({ connectionString: database.url })
    await client.connect()
    try {
      await expect
        .poll(
          async () =>
            Number(
              (await client.query<{ n: string }>('select min(attempts) as n from mail_queue'))
                .rows[0]!.n,
            ),
          { timeout: 15_000 },
        )
        .toBeGreaterThanOrEqual(1)
    } finally {
      await client.end()
    }
    // Only the verification mail, delivered before the server went down.
    expect(smtp.messages).toHaveLength(1)

    await smtp.up()
    const mail = await smtp.waitForMail(email, 30_000)
    await expect.poll(queued, { timeout: 30_000 }).toBe(0)
    // The queue is empty: nothing is left to send, so these counts are final.
    expect(smtp.mailTo(email)).toHaveLength(2)
    for (const to of others) expect(smtp.mailTo(to), to).toHaveLength(1)
    expect(smtp.messages).toHaveLength(8)

    const reset = await b.request('/v1/user/auth/password/reset', {
      json: { token: resetCodeOf(mail), new_password: NEW_PASSWORD },
    })
    expect(reset.status).toBe(204)
    await tokenPairOf(
      await a.request('/v1/user/auth/login', { json: { email, password: NEW_PASSWORD } }),
    )
    const notice = await smtp.waitForMail(email, 30_000)
    expect(notice.subject).toBe('Your Tessera password was reset')
    await expect.poll(queued, { timeout: 30_000 }).toBe(0)
    expect(smtp.mailTo(email)).toHaveLength(3)
  }, 120_000)
})
