import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requestPasswordReset } from '../../src/accounts/password-reset.js'
import { accountKey } from '../../src/rate-limit/limits.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { enrolTotp } from '../support/mfa.js'
import { authz, REVOKED_AT_AUTHZ } from '../support/revocations.js'
import { signedInSuperuser } from '../support/superuser.js'
import {
  expectProblem,
  PASSWORD,
  refresh,
  register,
  registerAndLogin,
  uniqueEmail,
} from '../support/users.js'
import { SoftwareAuthenticator } from '../support/webauthn.js'

const SECRET = 'erasure-test-service-secret-0123456789'

/**
 * Every table of src/db/schema.ts. The test compares it with the database's own list, so a table
 * added later fails here until someone decides what erasure does with it.
 */
const TABLES = [
  'users',
  'identities',
  'sessions',
  'refresh_tokens',
  'signing_keys',
  'audit_events',
  'oauth_states',
  'login_codes',
  'login_devices',
  'device_authorizations',
  'link_tickets',
  'revocation_log',
  'revocation_log_head',
  'service_clients',
  'mail_queue',
  'password_resets',
  'mail_requests',
  'personal_tokens',
  'email_tokens',
  'rate_limits',
  'prune_lease',
  'totp_credentials',
  'recovery_codes',
  'mfa_tickets',
  'passkeys',
  'webauthn_challenges',
] as const

/** Where the erased user's id may stay: the pseudonymous trail and the revocation log. */
const ID_MAY_STAY = new Set(['audit_events', 'revocation_log'])

for (const dialect of dialects()) {
  describe(`account erasure [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          SERVICE_SECRET: SECRET,
        },
      })
    })
    afterAll(() => app.close())

    const db = () => app.server.tessera.db

    /** A user with personal data in as many tables as the API lets one leave it. */
    async function populatedUser() {
      const name = `Ada ${randomUUID().slice(0, 8)} Lovelace`
      const email = uniqueEmail('Erase.Me')
      const newEmail = uniqueEmail('erase.next')
      const res = await app.request('/v1/user/auth/register', {
        json: { email, password: PASSWORD, display_name: name },
        headers: { 'user-agent': 'erasure-test' },
      })
      expect(res.status).toBe(201)
      const user = (await res.json()) as { id: string }
      const login = await app.request('/v1/user/auth/login', {
        json: { email, password: PASSWORD },
        headers: { 'x-forwarded-for': '203.0.113.7' },
      })
      const tokens = (await login.json()) as { access_token: string; refresh_token: string }
      const pat = await app.request('/v1/user/tokens', {
        token: tokens.access_token,
        json: { name: `laptop of ${name}` },
      })
      expect(pat.status, await pat.clone().text()).toBe(201)
      const change = await app.request('/v1/user/email/change', {
        token: tokens.access_token,
        json: { email: newEmail, current_password: PASSWORD },
      })
      expect(change.status, await change.clone().text()).toBe(202)
      await requestPasswordReset(app.server.tessera, email, { ip: '198.51.100.9', userAgent: null })
      // A linked identity and a wrong password (an audit event with an address).
      await db()
        .insertInto('identities')
        .values({
          provider: 'orcid',
          subject: `0000-${randomUUID()}`,
          user_id: user.id,
          email: email.toLowerCase(),
          created_at: app.clock(),
        })
        .execute()
      // Second factors: TOTP with its recovery codes, and a passkey.
      await enrolTotp(app, tokens.access_token)
      const options = await app.request('/v1/user/passkeys/registration-options', {
        method: 'POST',
        token: tokens.access_token,
      })
      const begun = (await options.json()) as { options: never; challenge: string }
      const passkey = await app.request('/v1/user/passkeys', {
        token: tokens.access_token,
        json: {
          name: `key of ${name}`,
          challenge: begun.challenge,
          response: new SoftwareAuthenticator('http://localhost:8000').register(begun.options),
        },
      })
      expect(passkey.status, await passkey.clone().text()).toBe(201)
      await app.request('/v1/user/auth/login', {
        json: { email, password: 'wrong-wrong-wrong' },
      })
      return { user, email, newEmail, name, tokens }
    }

    /** Every row of every table that mentions one of `needles` (case-insensitive). */
    async function rowsMentioning(needles: string[]): Promise<Record<string, unknown[]>> {
      const found: Record<string, unknown[]> = {}
      for (const table of TABLES) {
        const rows = (await sql`select * from ${sql.table(table)}`.execute(db())).rows
        const hits = rows.filter((row) => {
          const text = JSON.stringify(row, (_k, v: unknown) =>
            typeof v === 'bigint' ? v.toString() : v,
          ).toLowerCase()
          return needles.some((n) => text.includes(n.toLowerCase()))
        })
        if (hits.length > 0) found[table] = hits
      }
      return found
    }

    it('the list of tables is the database’s', async () => {
      const tables = (await db().introspection.getTables())
        .map((t) => t.name)
        .filter((n) => !n.startsWith('kysely_'))
      expect([...tables].sort()).toEqual([...TABLES].sort())
    })

    it('DELETE /v1/user/me erases every personal datum and revokes everything', async () => {
      const alice = await populatedUser()
      const before = await rowsMentioning([alice.email, alice.name, alice.newEmail])
      // The set-up did leave the person in many tables.
      expect(Object.keys(before).length).toBeGreaterThanOrEqual(4)

      expect(Object.keys(await rowsMentioning([accountKey(alice.email.toLowerCase())]))).toEqual([
        'rate_limits',
      ])
      const res = await app.request('/v1/user/me', {
        method: 'DELETE',
        token: alice.tokens.access_token,
      })
      expect(res.status, await res.clone().text()).toBe(204)

      expect(
        await rowsMentioning([alice.email, alice.name, alice.newEmail, '203.0.113.7']),
      ).toEqual({})
      // The counters of the address are keyed by its hash (src/rate-limit/limits.ts).
      const hashed = accountKey(alice.email.toLowerCase())
      expect(Object.keys(before)).not.toContain('rate_limits')
      expect(await rowsMentioning([hashed])).toEqual({})
      const withId = await rowsMentioning([alice.user.id])
      expect(Object.keys(withId).filter((t) => !ID_MAY_STAY.has(t))).toEqual([])
      // The trail: no address, no IP, no free text; who erased it.
      const trail = await db()
        .selectFrom('audit_events')
        .select(['event', 'ip', 'detail'])
        .where('user_id', '=', alice.user.id)
        .execute()
      expect(trail.every((e) => e.ip === null)).toBe(true)
      expect(trail.map((e) => e.event)).toEqual(
        expect.arrayContaining(['user_registered', 'login_failed', 'user_deleted']),
      )
      const deleted = trail.find((e) => e.event === 'user_deleted')!
      expect(JSON.parse(deleted.detail!)).toEqual({ by: alice.user.id })
      const revoked = await db()
        .selectFrom('revocation_log')
        .select('kind')
        .where('subject', '=', alice.user.id)
        .execute()
      expect(revoked.map((r) => r.kind)).toEqual(['user'])

      // Its tokens are refused: at Tessera, by introspection, and the refresh token.
      await expectProblem(
        await app.request('/v1/user/me', { token: alice.tokens.access_token }),
        401,
        'unauthorized',
      )
      const introspected = await app.request('/v1/token/introspect', {
        headers: { 'x-service-secret': SECRET },
        json: { token: alice.tokens.access_token },
      })
      expect(await introspected.json()).toEqual({ active: false })
      // What resource services see through the revocation feed (GET /v1/authz reads this
      // process's copy of it).
      await app.server.tessera.revocations.sync()
      expect(await authz(app, alice.tokens.access_token)).toBe(REVOKED_AT_AUTHZ)
      await expectProblem(
        await refresh(app, alice.tokens.refresh_token),
        401,
        'invalid_refresh_token',
      )
      // The address is free again.
      const again = await register(app, alice.email)
      expect(again.user.id).not.toBe(alice.user.id)
    })

    it('self-deletion needs a recent authentication', async () => {
      const bob = await registerAndLogin(app)
      app.clock.advance(301_000)
      const fresh = (await (await refresh(app, bob.tokens.refresh_token)).json()) as {
        access_token: string
      }
      await expectProblem(
        await app.request('/v1/user/me', { method: 'DELETE', token: fresh.access_token }),
        401,
        'reauthentication_required',
      )
      expect(
        await db().selectFrom('users').select('id').where('id', '=', bob.user.id).execute(),
      ).toHaveLength(1)
      const reauth = await app.request('/v1/user/auth/reauthenticate', {
        token: fresh.access_token,
        json: { password: PASSWORD },
      })
      expect(reauth.status).toBe(204)
      const res = await app.request('/v1/user/me', { method: 'DELETE', token: fresh.access_token })
      expect(res.status).toBe(204)
      await expectProblem(
        await app.request('/v1/user/me', { method: 'DELETE' }),
        401,
        'unauthorized',
      )
    })

    it('a token made from a personal access token cannot delete the account', async () => {
      const carol = await registerAndLogin(app)
      const pat = (await (
        await app.request('/v1/user/tokens', {
          token: carol.tokens.access_token,
          json: { name: 'script' },
        })
      ).json()) as { token: string }
      const exchanged = (await (
        await app.request('/v1/oauth/token', {
          json: {
            grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
            subject_token: pat.token,
            subject_token_type: 'urn:tessera:params:oauth:token-type:pat',
          },
        })
      ).json()) as { access_token: string }
      const res = await app.request('/v1/user/me', {
        method: 'DELETE',
        token: exchanged.access_token,
      })
      expect([401, 403]).toContain(res.status)
      expect(
        await db().selectFrom('users').select('id').where('id', '=', carol.user.id).execute(),
      ).toHaveLength(1)
    })

    it('an admin delete erases the same way and names the superuser', async () => {
      const root = await signedInSuperuser(app)
      const dave = await populatedUser()
      const res = await app.request(`/v1/admin/users/${dave.user.id}`, {
        method: 'DELETE',
        token: root.tokens.access_token,
      })
      expect(res.status).toBe(204)
      expect(await rowsMentioning([dave.email, dave.name, dave.newEmail])).toEqual({})
      const [deleted] = await db()
        .selectFrom('audit_events')
        .select('detail')
        .where('user_id', '=', dave.user.id)
        .where('event', '=', 'user_deleted')
        .execute()
      expect(JSON.parse(deleted!.detail!)).toEqual({ by: root.user.id })
      await expectProblem(
        await app.request(`/v1/admin/users/${dave.user.id}`, {
          method: 'DELETE',
          token: root.tokens.access_token,
        }),
        404,
        'not_found',
      )
    })
  })
}
