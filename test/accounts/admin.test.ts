import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { enrolTotp, totpCode } from '../support/mfa.js'
import { signedInSuperuser } from '../support/superuser.js'
import { expectProblem, login, PASSWORD, refresh, registerAndLogin } from '../support/users.js'

interface Claims {
  sub: string
  sid: string
  acct: string
  verified: boolean
}

/** The claims of a v4.public token: the base64url body minus its final 64 signature bytes. */
function claimsOf(accessToken: string): Claims {
  const [version, purpose, body] = accessToken.split('.')
  expect(`${version}.${purpose}`).toBe('v4.public')
  const bytes = Buffer.from(body!, 'base64url')
  return JSON.parse(bytes.subarray(0, bytes.length - 64).toString('utf8')) as Claims
}

function promote(app: TestApp, token: string | undefined, userId: string): Promise<Response> {
  return app.request(`/v1/admin/users/${encodeURIComponent(userId)}/promote`, {
    method: 'POST',
    ...(token === undefined ? {} : { token }),
  })
}

for (const dialect of dialects()) {
  describe(`admin: promote [${dialect}]`, () => {
    let app: TestApp
    const superuser = () => signedInSuperuser(app)

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_REGISTER_PER_IP: '0', RATE_LIMIT_LOGIN_PER_IP: '0' },
      })
    })
    afterAll(() => app.close())

    it('a regular user may not promote anyone, not even themself: 403 forbidden', async () => {
      const alice = await registerAndLogin(app)
      const bob = await registerAndLogin(app)
      for (const target of [bob.user.id, alice.user.id]) {
        await expectProblem(await promote(app, alice.tokens.access_token, target), 403, 'forbidden')
      }
      const rows = await app.server.tessera.db
        .selectFrom('users')
        .select('account_type')
        .where('id', 'in', [alice.user.id, bob.user.id])
        .execute()
      expect(rows.map((r) => r.account_type)).toEqual(['regular', 'regular'])
    })

    it('without or with a bad bearer token: 401 unauthorized', async () => {
      const bob = await registerAndLogin(app)
      await expectProblem(await promote(app, undefined, bob.user.id), 401, 'unauthorized')
      await expectProblem(await promote(app, 'garbage', bob.user.id), 401, 'unauthorized')
      await expectProblem(
        await promote(app, bob.tokens.refresh_token, bob.user.id),
        401,
        'unauthorized',
      )
    })

    it('a superuser made by the CLI path logs in with acct superuser and verified', async () => {
      const root = await superuser()
      expect(root.user.account_type).toBe('superuser')
      expect(claimsOf(root.tokens.access_token)).toMatchObject({
        sub: root.user.id,
        acct: 'superuser',
        verified: true,
      })
      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('event')
        .where('user_id', '=', root.user.id)
        .execute()
      expect(audit.map((a) => a.event)).toContain('superuser_created')
    })

    it('a superuser promotes a regular user', async () => {
      // 200 superuser, their next token says so, audited.
      const root = await superuser()
      const bob = await registerAndLogin(app)
      expect(claimsOf(bob.tokens.access_token).acct).toBe('regular')

      const res = await promote(app, root.tokens.access_token, bob.user.id)
      expect(res.status, await res.clone().text()).toBe(200)
      expect(await res.json()).toMatchObject({
        id: bob.user.id,
        email: bob.email,
        account_type: 'superuser',
        verified: true,
      })

      const next = await login(app, bob.email)
      expect(claimsOf(next.access_token)).toMatchObject({
        sub: bob.user.id,
        acct: 'superuser',
        verified: true,
      })
      // A refresh re-reads the account too.
      const refreshed = (await (await refresh(app, bob.tokens.refresh_token)).json()) as {
        access_token: string
      }
      expect(claimsOf(refreshed.access_token).acct).toBe('superuser')

      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .selectAll()
        .where('event', '=', 'user_promoted')
        .where('user_id', '=', bob.user.id)
        .execute()
      expect(audit).toHaveLength(1)
      expect(JSON.parse(audit[0]!.detail!)).toEqual({ by: root.user.id })

      // The promoted user has the account type, but its powers need a second factor
      // (MFA_REQUIRED_FOR=superuser, the default): enrolled and stepped up, it promotes others.
      const carol = await registerAndLogin(app)
      await expectProblem(
        await promote(app, next.access_token, carol.user.id),
        403,
        'mfa_step_up_required',
      )
      const { secret } = await enrolTotp(app, next.access_token)
      const raised = await app.request('/v1/user/mfa/step-up', {
        token: next.access_token,
        json: { totp_code: totpCode(app, secret, 1) },
      })
      expect(raised.status, await raised.clone().text()).toBe(200)
      const { access_token } = (await raised.json()) as { access_token: string }
      expect((await promote(app, access_token, carol.user.id)).status).toBe(200)
    })

    it('an unknown user id is 404 not_found and audits nothing', async () => {
      const root = await superuser()
      for (const id of [randomUUID(), 'nobody', "1' or '1'='1"]) {
        await expectProblem(await promote(app, root.tokens.access_token, id), 404, 'not_found')
      }
      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('id')
        .where('event', '=', 'user_promoted')
        .where('user_id', 'in', ['nobody', "1' or '1'='1"])
        .execute()
      expect(audit).toHaveLength(0)
    })

    it('the account type is read from the database, not the token', async () => {
      // A demoted superuser is forbidden.
      const root = await superuser()
      const bob = await registerAndLogin(app)
      await app.server.tessera.db
        .updateTable('users')
        .set({ account_type: 'regular' })
        .where('id', '=', root.user.id)
        .execute()
      // The token still claims acct superuser, and is still valid.
      expect(claimsOf(root.tokens.access_token).acct).toBe('superuser')
      expect((await app.request('/v1/user/me', { token: root.tokens.access_token })).status).toBe(
        200,
      )
      await expectProblem(
        await promote(app, root.tokens.access_token, bob.user.id),
        403,
        'forbidden',
      )
    })

    it('a disabled superuser is refused even with a live access token', async () => {
      const root = await superuser()
      const bob = await registerAndLogin(app)
      await app.server.tessera.db
        .updateTable('users')
        .set({ disabled: 1 })
        .where('id', '=', root.user.id)
        .execute()
      const res = await promote(app, root.tokens.access_token, bob.user.id)
      // Every bearer route checks that the user is enabled (README, "Tokens").
      expect(res.status).toBe(401)
      expect(((await res.json()) as { code: string }).code).toBe('unauthorized')
    })

    it('promoting needs a recent authentication', async () => {
      // A stolen superuser token cannot grant superuser.
      const root = await superuser()
      const mallory = await registerAndLogin(app)
      // The superuser's session is older than REAUTH_MAX_AGE (300 s) but its access token is not.
      app.clock.advance(301_000)
      const refreshed = (await (await refresh(app, root.tokens.refresh_token)).json()) as {
        access_token: string
      }
      const res = await promote(app, refreshed.access_token, mallory.user.id)
      await expectProblem(res, 401, 'reauthentication_required')
      const row = await app.server.tessera.db
        .selectFrom('users')
        .select('account_type')
        .where('id', '=', mallory.user.id)
        .executeTakeFirstOrThrow()
      expect(row.account_type).toBe('regular')
      // After re-entering the password the same session may promote.
      const reauth = await app.request('/v1/user/auth/reauthenticate', {
        token: refreshed.access_token,
        json: { password: PASSWORD },
      })
      expect(reauth.status).toBe(204)
      expect((await promote(app, refreshed.access_token, mallory.user.id)).status).toBe(200)
    })
  })
}
