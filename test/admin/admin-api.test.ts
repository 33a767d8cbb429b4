import { randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { outboxDirectory } from '../../src/mail/transport.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { outboxResetCode } from '../support/mail.js'
import { loginWithTotp } from '../support/mfa.js'
import { type SignedInSuperuser, signedInSuperuser } from '../support/superuser.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  registerAndLogin,
  uniqueEmail,
} from '../support/users.js'

interface ListedUser {
  id: string
  email: string
  display_name: string | null
  account_type: string
  verified: boolean
  disabled: boolean
  created_at: string
}
interface UserList {
  users: ListedUser[]
  next_cursor: string | null
}

const REASON = { reason: 'ticket 4711' }

for (const dialect of dialects()) {
  describe(`admin API [${dialect}]`, () => {
    let app: TestApp
    let root: SignedInSuperuser
    const as = (token: string | undefined, init: RequestInit & { json?: unknown } = {}) => ({
      ...init,
      ...(token === undefined ? {} : { token }),
    })
    const auditOf = (userId: string, event: string) =>
      app.server.tessera.db
        .selectFrom('audit_events')
        .selectAll()
        .where('user_id', '=', userId)
        .where('event', '=', event)
        .execute()

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_REGISTER_PER_IP: '0', RATE_LIMIT_LOGIN_PER_IP: '0' },
      })
    })
    afterAll(() => app.close())
    // A fresh one per test: tests move the shared clock past REAUTH_MAX_AGE.
    beforeEach(async () => {
      root = await signedInSuperuser(app)
    })

    /** Every admin route with the request that succeeds for a superuser, and its status. */
    function routes(target: string): [string, string, RequestInit & { json?: unknown }, number][] {
      return [
        ['GET', '/v1/admin/users', {}, 200],
        ['GET', `/v1/admin/users/${target}`, {}, 200],
        ['POST', `/v1/admin/users/${target}/disable`, { json: REASON }, 204],
        ['POST', `/v1/admin/users/${target}/enable`, { json: REASON }, 204],
        [
          'POST',
          `/v1/admin/users/${target}/account-type`,
          { json: { account_type: 'academic', ...REASON } },
          200,
        ],
        [
          'POST',
          `/v1/admin/users/${target}/verification`,
          { json: { verified: false, ...REASON } },
          200,
        ],
        ['POST', `/v1/admin/users/${target}/sessions/revoke`, {}, 204],
        ['POST', `/v1/admin/users/${target}/password-reset`, {}, 202],
        ['DELETE', `/v1/admin/users/${target}`, {}, 204],
      ]
    }

    it('every route: 401 with no token, 403 for a regular user, 2xx for a superuser', async () => {
      const target = await registerAndLogin(app)
      const regular = await registerAndLogin(app)
      for (const [method, path, init, status] of routes(target.user.id)) {
        await expectProblem(await app.request(path, { ...init, method }), 401, 'unauthorized')
        await expectProblem(
          await app.request(path, as(regular.tokens.access_token, { ...init, method })),
          403,
          'forbidden',
        )
        const res = await app.request(path, as(root.tokens.access_token, { ...init, method }))
        expect(res.status, `${method} ${path}: ${await res.clone().text()}`).toBe(status)
      }
      // The regular user's attempts changed nothing before the superuser's: each left its row.
      expect(await auditOf(target.user.id, 'user_deleted')).toHaveLength(1)
    })

    it('an unknown or malformed user id is 404', async () => {
      for (const [method, path, init] of [
        ...routes(randomUUID()).slice(1),
        ...routes('nobody').slice(1),
      ]) {
        await expectProblem(
          await app.request(path, as(root.tokens.access_token, { ...init, method })),
          404,
          'not_found',
        )
      }
    })

    it('pages through every user exactly once while users register concurrently', async () => {
      const before = await Promise.all(Array.from({ length: 12 }, () => registerAndLogin(app)))
      const existing = await app.server.tessera.db.selectFrom('users').select('id').execute()
      const seen: string[] = []
      let cursor: string | null = null
      let inserted = 0
      do {
        const query = `limit=5${cursor === null ? '' : `&cursor=${cursor}`}`
        // A registration during every page. The test clock stands still, so every user has the
        // same created_at and the id alone orders them: the tie-break is what is tested.
        const [res] = await Promise.all([
          app.request(`/v1/admin/users?${query}`, as(root.tokens.access_token)),
          registerAndLogin(app).then(() => (inserted += 1)),
        ])
        expect(res.status).toBe(200)
        const page = (await res.json()) as UserList
        expect(page.users.length).toBeLessThanOrEqual(5)
        seen.push(...page.users.map((u) => u.id))
        cursor = page.next_cursor
      } while (cursor !== null)
      expect(inserted).toBeGreaterThan(1)
      expect(new Set(seen).size).toBe(seen.length)
      for (const { id } of existing) expect(seen).toContain(id)
      for (const u of before) expect(seen).toContain(u.user.id)
    })

    it('filters by type, verification, disabled, provider, creation time and prefix', async () => {
      const tag = `flt${randomUUID().slice(0, 8)}`
      const plain = await registerAndLogin(app, `${tag}.plain@example.org`)
      const off = await registerAndLogin(app, `${tag}.off@example.org`)
      app.clock.advance(10_000)
      const linked = await registerAndLogin(app, `${tag}.linked@example.org`)
      const wild = await registerAndLogin(app, `${tag}_x@example.org`)
      const db = app.server.tessera.db
      await db
        .insertInto('identities')
        .values({
          provider: 'orcid',
          subject: randomUUID(),
          user_id: linked.user.id,
          email: null,
          created_at: app.clock(),
        })
        .execute()
      await db
        .updateTable('users')
        .set({ display_name: `Zyx ${tag}` })
        .where('id', '=', plain.user.id)
        .execute()
      const token = root.tokens.access_token
      expect(
        (await app.request(`/v1/admin/users/${off.user.id}/disable`, as(token, { json: REASON })))
          .status,
      ).toBe(204)
      const ids = async (query: string) => {
        const res = await app.request(`/v1/admin/users?limit=200&${query}`, as(token))
        expect(res.status, await res.clone().text()).toBe(200)
        return ((await res.json()) as UserList).users.map((u) => u.id).sort()
      }
      const all = [plain, off, linked, wild].map((u) => u.user.id).sort()
      expect(await ids(`q=${tag.toUpperCase()}`)).toEqual(all)
      // LIKE wildcards in q match only themselves.
      expect(await ids(`q=${encodeURIComponent(`${tag}_`)}`)).toEqual([wild.user.id])
      expect(await ids(`q=${encodeURIComponent(`${tag}%`)}`)).toEqual([])
      expect(await ids(`q=${encodeURIComponent(`${tag}.`)}&disabled=true`)).toEqual([off.user.id])
      expect(await ids(`q=${tag}&disabled=false`)).toEqual(
        [plain, linked, wild].map((u) => u.user.id).sort(),
      )
      expect(await ids(`q=${tag}&provider=orcid`)).toEqual([linked.user.id])
      expect(await ids(`q=zyx%20${tag}`)).toEqual([plain.user.id])
      const midpoint = new Date(app.clock() - 5_000).toISOString()
      expect(await ids(`q=${tag}&created_after=${midpoint}`)).toEqual(
        [linked, wild].map((u) => u.user.id).sort(),
      )
      expect(await ids(`q=${tag}&created_before=${midpoint}`)).toEqual(
        [plain, off].map((u) => u.user.id).sort(),
      )
      expect(await ids(`q=${tag}&account_type=regular&verified=false`)).toEqual(all)
      expect(await ids(`q=${tag}&account_type=academic`)).toEqual([])
      expect(await ids(`q=${tag}&email_verified=true`)).toEqual([])
      for (const bad of [
        'limit=0',
        'limit=201',
        'limit=x',
        'disabled=yes',
        'account_type=admin',
        'created_after=yesterday',
        `q=${'a'.repeat(101)}`,
        'q=%00',
        'acount_type=regular',
        'cursor=***',
      ]) {
        await expectProblem(
          await app.request(`/v1/admin/users?${bad}`, as(token)),
          400,
          'validation_failed',
        )
      }
      await expectProblem(
        await app.request('/v1/admin/users?cursor=bm90YWN1cnNvcg', as(token)),
        400,
        'invalid_cursor',
      )
    })

    it('shows one user with identities, live sessions and recent audit events', async () => {
      const bob = await registerAndLogin(app)
      const res = await app.request(`/v1/admin/users/${bob.user.id}`, as(root.tokens.access_token))
      expect(res.status).toBe(200)
      const body = (await res.json()) as {
        id: string
        email: string
        disabled: boolean
        identities: unknown[]
        sessions: { id: string; kind: string }[]
        audit_events: { event: string }[]
      }
      expect(body).toMatchObject({ id: bob.user.id, email: bob.email, disabled: false })
      expect(body.identities).toEqual([])
      expect(body.sessions.map((s) => s.kind)).toEqual(['api'])
      expect(body.audit_events.map((e) => e.event)).toEqual(
        expect.arrayContaining(['user_registered', 'login_succeeded']),
      )
    })

    it('disable ends sessions, names actor and reason; enable lets the user back', async () => {
      const bob = await registerAndLogin(app)
      const path = `/v1/admin/users/${bob.user.id}`
      await expectProblem(
        await app.request(`${path}/disable`, as(root.tokens.access_token, { json: {} })),
        400,
        'validation_failed',
      )
      await expectProblem(
        await app.request(
          `${path}/disable`,
          as(root.tokens.access_token, { json: { reason: 'x'.repeat(501) } }),
        ),
        400,
        'validation_failed',
      )
      const off = await app.request(
        `${path}/disable`,
        as(root.tokens.access_token, { json: REASON }),
      )
      expect(off.status).toBe(204)
      await expectProblem(
        await refresh(app, bob.tokens.refresh_token),
        401,
        'invalid_refresh_token',
      )
      await expectProblem(
        await app.request('/v1/user/auth/login', {
          json: { email: bob.email, password: PASSWORD },
        }),
        403,
        'account_disabled',
      )
      const [disabled] = await auditOf(bob.user.id, 'user_disabled')
      expect(JSON.parse(disabled!.detail!)).toEqual({ by: root.user.id, reason: 'ticket 4711' })
      const on = await app.request(`${path}/enable`, as(root.tokens.access_token, { json: REASON }))
      expect(on.status).toBe(204)
      await login(app, bob.email)
      const [enabled] = await auditOf(bob.user.id, 'user_enabled')
      expect(JSON.parse(enabled!.detail!)).toEqual({ by: root.user.id, reason: 'ticket 4711' })
    })

    it('a superuser may not disable, retype or delete themself: cannot_target_self', async () => {
      const me = await signedInSuperuser(app)
      const path = `/v1/admin/users/${me.user.id}`
      const token = me.tokens.access_token
      for (const [method, suffix, json] of [
        ['POST', '/disable', REASON],
        ['POST', '/account-type', { account_type: 'regular', ...REASON }],
        ['DELETE', '', undefined],
      ] as const) {
        const init = json === undefined ? { method } : { method, json }
        await expectProblem(
          await app.request(path + suffix, as(token, init)),
          409,
          'cannot_target_self',
        )
      }
      const row = await app.server.tessera.db
        .selectFrom('users')
        .select(['account_type', 'disabled'])
        .where('id', '=', me.user.id)
        .executeTakeFirstOrThrow()
      expect(row).toEqual({ account_type: 'superuser', disabled: 0 })
    })

    it('changes need a recent authentication, reads do not', async () => {
      const me = await signedInSuperuser(app)
      const bob = await registerAndLogin(app)
      app.clock.advance(301_000)
      const access = (
        (await (await refresh(app, me.tokens.refresh_token)).json()) as {
          access_token: string
        }
      ).access_token
      const path = `/v1/admin/users/${bob.user.id}`
      expect((await app.request(path, as(access))).status).toBe(200)
      for (const [method, init] of routes(bob.user.id)
        .slice(2)
        .map(([m, p, i]) => [m, { ...i, path: p }] as const)) {
        await expectProblem(
          await app.request(init.path, as(access, { ...init, method })),
          401,
          'reauthentication_required',
        )
      }
      expect((await app.request(`${path}`, as(access))).status).toBe(200)
    })

    it('account type and verification change with the reason audited', async () => {
      const bob = await registerAndLogin(app)
      const path = `/v1/admin/users/${bob.user.id}`
      const token = root.tokens.access_token
      const typed = await app.request(
        `${path}/account-type`,
        as(token, { json: { account_type: 'service', reason: 'pipeline robot' } }),
      )
      expect(await typed.json()).toMatchObject({ account_type: 'service', verified: true })
      const [changed] = await auditOf(bob.user.id, 'account_type_changed')
      expect(JSON.parse(changed!.detail!)).toEqual({
        by: root.user.id,
        from: 'regular',
        to: 'service',
        reason: 'pipeline robot',
      })
      await app.request(
        `${path}/account-type`,
        as(token, { json: { account_type: 'regular', reason: 'back' } }),
      )
      const verified = await app.request(
        `${path}/verification`,
        as(token, { json: { verified: true, reason: 'letter from the dean' } }),
      )
      expect(await verified.json()).toMatchObject({ account_type: 'academic', verified: true })
      const withdrawn = await app.request(
        `${path}/verification`,
        as(token, { json: { verified: false, reason: 'left the institute' } }),
      )
      expect(await withdrawn.json()).toMatchObject({ account_type: 'regular', verified: false })
      const events = await auditOf(bob.user.id, 'verification_changed')
      expect(events.map((e) => JSON.parse(e.detail!) as unknown)).toEqual(
        expect.arrayContaining([
          { by: root.user.id, verified: true, reason: 'letter from the dean' },
          { by: root.user.id, verified: false, reason: 'left the institute' },
        ]),
      )
      await expectProblem(
        await app.request(
          `${path}/account-type`,
          as(token, { json: { account_type: 'admin', reason: 'x' } }),
        ),
        400,
        'validation_failed',
      )
      await expectProblem(
        await app.request(
          `${path}/verification`,
          as(token, { json: { verified: 'yes', reason: 'x' } }),
        ),
        400,
        'validation_failed',
      )
    })

    it('revoking sessions ends every session; the account stays enabled', async () => {
      const bob = await registerAndLogin(app)
      const second = await login(app, bob.email)
      const res = await app.request(
        `/v1/admin/users/${bob.user.id}/sessions/revoke`,
        as(root.tokens.access_token, { method: 'POST' }),
      )
      expect(res.status).toBe(204)
      for (const pair of [bob.tokens, second]) {
        await expectProblem(await refresh(app, pair.refresh_token), 401, 'invalid_refresh_token')
        await expectProblem(
          await app.request('/v1/user/me', { token: pair.access_token }),
          401,
          'unauthorized',
        )
      }
      await login(app, bob.email)
      const [event] = await auditOf(bob.user.id, 'sessions_revoked_by_admin')
      expect(JSON.parse(event!.detail!)).toEqual({ by: root.user.id })
    })

    it('a forced password reset voids the password and mails a reset that works', async () => {
      const email = uniqueEmail('forced')
      const bob = await registerAndLogin(app, email)
      const res = await app.request(
        `/v1/admin/users/${bob.user.id}/password-reset`,
        as(root.tokens.access_token, { method: 'POST' }),
      )
      expect(res.status).toBe(202)
      expect(await res.json()).toEqual({ outcome: 'reset_sent' })
      await expectProblem(
        await app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
        401,
        'invalid_credentials',
      )
      await expectProblem(
        await refresh(app, bob.tokens.refresh_token),
        401,
        'invalid_refresh_token',
      )
      await app.server.mail.sendDue()
      const code = await outboxResetCode(outboxDirectory(app.server.tessera.config), email)
      const next = `${PASSWORD}-new`
      const reset = await app.request('/v1/user/auth/password/reset', {
        json: { token: code, new_password: next },
      })
      expect(reset.status, await reset.clone().text()).toBe(204)
      await login(app, email, next)
      const [event] = await auditOf(bob.user.id, 'password_reset_forced')
      expect(JSON.parse(event!.detail!)).toEqual({ by: root.user.id, outcome: 'reset_sent' })
    })
    it('on their own account a superuser ends the other sessions and keeps this one', async () => {
      // A second sign-in of the superuser, a TOTP step later than the one its set-up spent.
      app.clock.advance(30_000)
      const other = await loginWithTotp(app, root.email, root.totpSecret)
      const res = await app.request(
        `/v1/admin/users/${root.user.id}/sessions/revoke`,
        as(root.tokens.access_token, { method: 'POST' }),
      )
      expect(res.status).toBe(204)
      await expectProblem(await refresh(app, other.refresh_token), 401, 'invalid_refresh_token')
      const me = await app.request('/v1/user/me', { token: root.tokens.access_token })
      expect(me.status).toBe(200)
    })

    it('forced reset, federated-only: sessions end, the mail says how to sign in', async () => {
      const bob = await registerAndLogin(app)
      const db = app.server.tessera.db
      await db
        .updateTable('users')
        .set({ password_hash: null })
        .where('id', '=', bob.user.id)
        .execute()
      const res = await app.request(
        `/v1/admin/users/${bob.user.id}/password-reset`,
        as(root.tokens.access_token, { method: 'POST' }),
      )
      expect(await res.json()).toEqual({ outcome: 'federated' })
      await expectProblem(
        await refresh(app, bob.tokens.refresh_token),
        401,
        'invalid_refresh_token',
      )
      const row = await db
        .selectFrom('users')
        .select('password_hash')
        .where('id', '=', bob.user.id)
        .executeTakeFirstOrThrow()
      expect(row.password_hash).toBeNull()
      // The sender may have sent it already: read what it wrote to the outbox.
      await app.server.mail.sendDue()
      const dir = outboxDirectory(app.server.tessera.config)
      const subjects: string[] = []
      for (const name of readdirSync(dir)) {
        const mail = await simpleParser(readFileSync(join(dir, name)))
        const to = [mail.to ?? []].flat().flatMap((a) => a.value.map((v) => v.address))
        if (to.includes(bob.email)) subjects.push(mail.subject ?? '')
      }
      expect(subjects).toContainEqual(expect.stringMatching(/^How you sign in to /))
    })
  })
}
