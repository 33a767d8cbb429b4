/**
 * The password reset request is answered before its account's work (README, "Password reset"):
 * the request path writes the same rows whether the address has an account, a federated-only
 * one or none, so neither the answer nor its time tells them apart; the server's background pass
 * then resolves each request once, even with two passes at a time, and a request left by a
 * server that stopped before its pass is resolved by the next one.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolvePendingMailRequests } from '../../src/accounts/mail-request-pass.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { createTestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { resetCodeOf } from '../support/mail.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import { register as registerUser, uniqueEmail } from '../support/users.js'

const NEW_PASSWORD = 'queued-then-resolved-passphrase-8'
/** A poll period no test waits for: the background pass runs only when a test calls it. */
const NEVER = 3_600_000

for (const dialect of dialects()) {
  describe(`password reset requests [${dialect}]`, () => {
    let smtp: TestSmtpServer
    let app: TestApp

    beforeAll(async () => {
      smtp = await startSmtpServer()
      app = await makeTestApp({
        dialect,
        env: {
          SMTP_URL: smtp.url,
          RATE_LIMIT_PASSWORD_RESET_PER_IP: '0',
          RATE_LIMIT_REGISTER_PER_IP: '0',
        },
        mailPollMs: NEVER,
      })
    })
    afterAll(async () => {
      await app?.close()
      await smtp?.stop()
    })

    const db = () => app.server.tessera.db
    const register = async (email: string) => {
      const registered = await registerUser(app, email)
      await app.server.mail.sendDue()
      await smtp.waitForMail(email)
      return registered
    }

    /** The number of rows of every table. */
    async function rowCounts(): Promise<Record<string, number>> {
      const counts: Record<string, number> = {}
      for (const { name } of await db().introspection.getTables()) {
        const { rows } = await sql<{
          n: unknown
        }>`select count(*) as n from ${sql.table(name)}`.execute(db())
        counts[name] = Number(rows[0]!.n)
      }
      return counts
    }

    /** Which tables' row counts `request` changed, and by how much. */
    async function rowsWrittenBy(request: () => Promise<Response>) {
      const before = await rowCounts()
      const res = await request()
      expect(res.status).toBe(202)
      const after = await rowCounts()
      const changed: Record<string, number> = {}
      for (const [table, n] of Object.entries(after)) {
        if (n !== before[table]) changed[table] = n - (before[table] ?? 0)
      }
      return changed
    }

    it('the same rows for an account, a federated one and an unknown address', async () => {
      const { email } = await register(uniqueEmail('queued-account'))
      const federated = await register(uniqueEmail('queued-federated'))
      await db()
        .updateTable('users')
        .set({ password_hash: null })
        .where('id', '=', federated.user.id)
        .execute()
      await db()
        .insertInto('identities')
        .values({
          provider: 'github',
          subject: `gh-${federated.user.id}`,
          user_id: federated.user.id,
          email: federated.email,
          created_at: app.clock(),
        })
        .execute()
      const unknown = uniqueEmail('queued-unknown')
      // The client address's counter exists from here on, as it would for any repeat caller.
      expect((await forgot(app, uniqueEmail('queued-first'))).status).toBe(202)

      const written = []
      for (const to of [email, federated.email, unknown]) {
        written.push(await rowsWrittenBy(() => forgot(app, to)))
      }
      // One counter for the address and one queued request; nothing else before the pass.
      expect(written).toEqual(Array(3).fill({ rate_limits: 1, mail_requests: 1 }))
      const rows = await db()
        .selectFrom('mail_requests')
        .selectAll()
        .where('email', 'in', [email, federated.email, unknown])
        .execute()
      expect(rows).toHaveLength(3)
      for (const row of rows) expect(Object.keys(row).sort()).toEqual(Object.keys(rows[0]!).sort())
      expect(smtp.mailTo(email)).toHaveLength(1)

      await app.server.mail.sendDue()
      expect(await db().selectFrom('mail_requests').selectAll().execute()).toEqual([])
      const mail = await smtp.waitForMail(email)
      expect(mail.subject).toBe('Reset your Tessera password')
      expect((await smtp.waitForMail(federated.email)).subject).toBe('How you sign in to Tessera')
      const other = await smtp.waitForMail(unknown)
      expect(other.text).not.toMatch(/tessera_pr_/)
      // The audit event is written by the pass, with the outcome the answer did not tell.
      const events = await db()
        .selectFrom('audit_events')
        .select('detail')
        .where('event', '=', 'password_reset_requested')
        .where('user_id', '=', federated.user.id)
        .execute()
      expect(events.map((e) => JSON.parse(e.detail ?? '{}').outcome)).toEqual(['federated'])
      expect((await reset(app, resetCodeOf(mail))).status).toBe(204)
    })

    it('verification again: the same rows for unverified, verified and no account', async () => {
      const unverified = await register(uniqueEmail('again-unverified'))
      const verified = await register(uniqueEmail('again-verified'))
      await db()
        .updateTable('users')
        .set({ email_verified: 1 })
        .where('id', '=', verified.user.id)
        .execute()
      const unknown = uniqueEmail('again-unknown')
      const again = (email: string) =>
        app.request('/v1/user/email/verify/send', { json: { email } })
      expect((await again(uniqueEmail('again-first'))).status).toBe(202)

      const written = []
      for (const to of [unverified.email, verified.email, unknown]) {
        written.push(await rowsWrittenBy(() => again(to)))
      }
      expect(written).toEqual(Array(3).fill({ rate_limits: 1, mail_requests: 1 }))

      await app.server.mail.sendDue()
      expect(await db().selectFrom('mail_requests').selectAll().execute()).toEqual([])
      expect((await smtp.waitForMail(unverified.email)).subject).toMatch(/verify/i)
      await app.server.mail.sendDue()
      // The registration's mail and this one; nothing to the others.
      expect(smtp.mailTo(unverified.email)).toHaveLength(2)
      expect(smtp.mailTo(verified.email)).toHaveLength(1)
      expect(smtp.mailTo(unknown)).toHaveLength(0)
    })

    it('the token is made by the pass, and its 30 minutes count from then', async () => {
      const { email, user } = await register(uniqueEmail('queued-ttl'))
      expect((await forgot(app, email)).status).toBe(202)
      app.clock.advance(20 * 60_000)
      await app.server.mail.sendDue()
      const token = await db()
        .selectFrom('password_resets')
        .select(['created_at', 'expires_at'])
        .where('user_id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(Number(token.created_at)).toBe(app.clock())
      expect(Number(token.expires_at)).toBe(app.clock() + 30 * 60_000)
      app.clock.advance(20 * 60_000)
      expect((await reset(app, resetCodeOf(await smtp.waitForMail(email)))).status).toBe(204)
    })

    it('two passes at a time resolve each request once', async () => {
      const { email, user } = await register(uniqueEmail('queued-twice'))
      const unknown = Array.from({ length: 24 }, () => uniqueEmail('queued-many'))
      for (const to of [...unknown, email]) expect((await forgot(app, to)).status).toBe(202)
      await Promise.all([
        resolvePendingMailRequests(app.server.tessera),
        resolvePendingMailRequests(app.server.tessera),
      ])
      const queued = await db()
        .selectFrom('mail_queue')
        .select(({ fn }) => ['recipient', fn.countAll<number>().as('n')])
        .where('recipient', 'in', [...unknown, email])
        .groupBy('recipient')
        .execute()
      expect(queued).toHaveLength(25)
      for (const row of queued) expect(Number(row.n), row.recipient).toBe(1)
      const tokens = await db()
        .selectFrom('password_resets')
        .select('token_hash')
        .where('user_id', '=', user.id)
        .execute()
      expect(tokens).toHaveLength(1)
      await app.server.mail.sendDue()
      for (const to of [...unknown, email]) await smtp.waitForMail(to)
      expect(smtp.mailTo(email)).toHaveLength(2)
      for (const to of unknown) expect(smtp.mailTo(to), to).toHaveLength(1)
    })

    it('a request that cannot be resolved holds up no later one', async () => {
      const { email } = await register(uniqueEmail('queued-after-bad'))
      // Older than anything waiting, and of a kind no pass knows: it fails at every pass.
      await db()
        .insertInto('mail_requests')
        .values({
          id: 'a-future-kind',
          kind: 'future_kind',
          email: 'nobody@example.org',
          email_normalized: 'nobody@example.org',
          ip: null,
          created_at: 0,
        })
        .execute()
      expect((await forgot(app, email)).status).toBe(202)
      await app.server.mail.sendDue()
      expect((await reset(app, resetCodeOf(await smtp.waitForMail(email)))).status).toBe(204)
      const left = await db().selectFrom('mail_requests').select('id').execute()
      expect(left.map((r) => r.id)).toEqual(['a-future-kind'])
      await db().deleteFrom('mail_requests').where('id', '=', 'a-future-kind').execute()
    })

    it('a newer request voids the token of an older one resolved in the same pass', async () => {
      const { email } = await register(uniqueEmail('queued-newer'))
      expect((await forgot(app, email)).status).toBe(202)
      app.clock.advance(1)
      expect((await forgot(app, email)).status).toBe(202)
      await app.server.mail.sendDue()
      const codes = [await smtp.waitForMail(email), await smtp.waitForMail(email)].map(resetCodeOf)
      const statuses = []
      for (const code of codes) statuses.push((await reset(app, code)).status)
      // Both mails went out, and only one token is left: the newer request's.
      expect(statuses.sort()).toEqual([204, 400])
    })
  })

  describe(`a reset request across a restart [${dialect}]`, () => {
    it('a request left by a server stopped before its pass is resolved by the next', async () => {
      const smtp = await startSmtpServer()
      const database = await createTestDatabase(dialect)
      try {
        const env = { SMTP_URL: smtp.url }
        const first = await makeTestApp({ dialect, database, env, mailPollMs: NEVER })
        const email = uniqueEmail('restart')
        try {
          expect((await registerUser(first, email)).user.id).toBeDefined()
          expect((await forgot(first, email)).status).toBe(202)
        } finally {
          await first.close()
        }
        const second = await makeTestApp({ dialect, database, env, mailPollMs: 50 })
        try {
          // The registration's verification mail was left in the queue too.
          const mails = [await smtp.waitForMail(email), await smtp.waitForMail(email)]
          const mail = mails.find((m) => m.subject === 'Reset your Tessera password')!
          expect(mail).toBeDefined()
          const left = await second.server.tessera.db
            .selectFrom('mail_requests')
            .selectAll()
            .execute()
          expect(left).toEqual([])
          expect((await reset(second, resetCodeOf(mail))).status).toBe(204)
        } finally {
          await second.close()
        }
      } finally {
        await database.drop()
        await smtp.stop()
      }
    })
  })
}

function forgot(a: TestApp, email: string) {
  return a.request('/v1/user/auth/password/forgot', { json: { email } })
}

function reset(a: TestApp, token: string) {
  return a.request('/v1/user/auth/password/reset', {
    json: { token, new_password: NEW_PASSWORD },
  })
}
