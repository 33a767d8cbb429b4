import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  refreshPair,
  register,
  registerAndLogin,
  type TokenPairBody,
  tokenPairOf,
  uniqueEmail,
} from '../support/users.js'

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/

interface SessionBody {
  id: string
  kind: string
  created_at: string
  last_used_at: string
  expires_at: string
  user_agent: string | null
  ip: string | null
  current: boolean
}

interface UserBody {
  id: string
  email: string
  display_name: string | null
  account_type: string
  verified: boolean
  created_at: string
}

async function loginWithAgent(
  app: TestApp,
  email: string,
  userAgent: string,
): Promise<TokenPairBody> {
  const res = await app.request('/v1/user/auth/login', {
    json: { email, password: PASSWORD },
    headers: { 'user-agent': userAgent },
  })
  return tokenPairOf(res)
}

async function listSessions(app: TestApp, token: string): Promise<SessionBody[]> {
  const res = await app.request('/v1/user/sessions', { token })
  expect(res.status, await res.clone().text()).toBe(200)
  return ((await res.json()) as { sessions: SessionBody[] }).sessions
}

/**
 * The `sid` claim of a v4.public token: payload is the base64url body minus the 64-byte signature.
 */
function sessionIdOf(accessToken: string): string {
  const body = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return (JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as { sid: string }).sid
}

function deleteSession(app: TestApp, token: string, id: string): Promise<Response> {
  return app.request(`/v1/user/sessions/${encodeURIComponent(id)}`, { method: 'DELETE', token })
}

function changePassword(
  app: TestApp,
  token: string,
  current: unknown,
  next: unknown,
): Promise<Response> {
  return app.request('/v1/user/password', {
    json: { current_password: current, new_password: next },
    token,
  })
}

function patchMe(app: TestApp, token: string, body: unknown): Promise<Response> {
  return app.request('/v1/user/me', { method: 'PATCH', json: body, token })
}

for (const dialect of dialects()) {
  describe(`session management [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_REGISTER_PER_IP: '0', RATE_LIMIT_LOGIN_PER_IP: '0' },
      })
    })
    afterAll(() => app.close())

    it('GET /sessions lists the live sessions with their details', async () => {
      // Current only for the caller.
      const { email } = await register(app)
      const phone = await loginWithAgent(app, email, 'TesseraPhone/1.0')
      app.clock.advance(60_000)
      const laptop = await loginWithAgent(app, email, 'TesseraLaptop/2.0')

      const sessions = await listSessions(app, laptop.access_token)
      expect(sessions).toHaveLength(2)
      for (const s of sessions) {
        expect(Object.keys(s).sort()).toEqual(
          [
            'created_at',
            'current',
            'expires_at',
            'id',
            'ip',
            'kind',
            'last_used_at',
            'user_agent',
          ].sort(),
        )
        expect(s.kind).toBe('api')
        for (const t of [s.created_at, s.last_used_at, s.expires_at]) expect(t).toMatch(RFC3339_UTC)
        expect(s.ip).toBe('127.0.0.1')
        // Absolute expiry: SESSION_ABSOLUTE_TTL (90 days by default) after creation.
        expect(Date.parse(s.expires_at) - Date.parse(s.created_at)).toBe(7_776_000_000)
      }
      const byAgent = Object.fromEntries(sessions.map((s) => [s.user_agent, s]))
      expect(byAgent['TesseraLaptop/2.0']).toMatchObject({
        id: sessionIdOf(laptop.access_token),
        current: true,
      })
      expect(byAgent['TesseraPhone/1.0']).toMatchObject({
        id: sessionIdOf(phone.access_token),
        current: false,
      })
      // Seen from the other session, the flag moves.
      const fromPhone = await listSessions(app, phone.access_token)
      expect(fromPhone.filter((s) => s.current).map((s) => s.id)).toEqual([
        sessionIdOf(phone.access_token),
      ])
    })

    it('last_used_at moves when the session refreshes', async () => {
      const { tokens } = await registerAndLogin(app)
      const [before] = await listSessions(app, tokens.access_token)
      expect(before!.last_used_at).toBe(before!.created_at)
      app.clock.advance(120_000)
      const next = await refreshPair(app, tokens.refresh_token)
      const [after] = await listSessions(app, next.access_token)
      expect(after!.id).toBe(before!.id)
      expect(Date.parse(after!.last_used_at) - Date.parse(before!.last_used_at)).toBe(120_000)
      expect(after!.created_at).toBe(before!.created_at)
    })

    it('a user agent is stored at most 256 characters long', async () => {
      const { email } = await register(app)
      const pair = await loginWithAgent(app, email, 'A'.repeat(1000))
      const [s] = await listSessions(app, pair.access_token)
      expect(s!.user_agent).toBe('A'.repeat(256))
    })

    it("the list shows only the caller's own sessions, and not revoked ones", async () => {
      const alice = await registerAndLogin(app)
      const bob = await registerAndLogin(app)
      const aliceSecond = await login(app, alice.email)
      await app.request('/v1/user/auth/logout', {
        json: { refresh_token: aliceSecond.refresh_token },
      })
      const sessions = await listSessions(app, alice.tokens.access_token)
      expect(sessions.map((s) => s.id)).toEqual([sessionIdOf(alice.tokens.access_token)])
      expect(sessions.map((s) => s.id)).not.toContain(sessionIdOf(bob.tokens.access_token))
    })

    it('DELETE /sessions/{id}: 204, that family is revoked and the others live', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const other = await login(app, email)
      const res = await deleteSession(app, tokens.access_token, sessionIdOf(other.access_token))
      expect(res.status).toBe(204)
      expect(await res.text()).toBe('')
      await expectProblem(await refresh(app, other.refresh_token), 401, 'invalid_refresh_token')
      await expectProblem(
        await app.request('/v1/user/me', { token: other.access_token }),
        401,
        'unauthorized',
      )
      expect((await listSessions(app, tokens.access_token)).map((s) => s.id)).toEqual([
        sessionIdOf(tokens.access_token),
      ])
      // The caller's own family is untouched.
      expect((await refresh(app, tokens.refresh_token)).status).toBe(200)
      // Deleting it again: it is no longer a live session.
      await expectProblem(
        await deleteSession(app, tokens.access_token, sessionIdOf(other.access_token)),
        404,
        'not_found',
      )
    })

    it("DELETE of the caller's own session logs the caller out", async () => {
      const { tokens } = await registerAndLogin(app)
      expect(
        (await deleteSession(app, tokens.access_token, sessionIdOf(tokens.access_token))).status,
      ).toBe(204)
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'invalid_refresh_token')
      await expectProblem(
        await app.request('/v1/user/me', { token: tokens.access_token }),
        401,
        'unauthorized',
      )
    })

    it("DELETE of an unknown or another user's session: 404, revokes nothing", async () => {
      const alice = await registerAndLogin(app)
      const bob = await registerAndLogin(app)
      for (const id of [
        randomUUID(),
        'not-a-uuid',
        "x' or '1'='1",
        sessionIdOf(bob.tokens.access_token),
      ]) {
        await expectProblem(
          await deleteSession(app, alice.tokens.access_token, id),
          404,
          'not_found',
        )
      }
      expect((await refresh(app, bob.tokens.refresh_token)).status).toBe(200)
    })

    it('logout-all: 204 and every family of the user dies; another user survives', async () => {
      const alice = await registerAndLogin(app)
      const others = [await login(app, alice.email), await login(app, alice.email)]
      const bob = await registerAndLogin(app)
      const res = await app.request('/v1/user/auth/logout-all', {
        method: 'POST',
        token: alice.tokens.access_token,
      })
      expect(res.status).toBe(204)
      for (const pair of [alice.tokens, ...others]) {
        await expectProblem(await refresh(app, pair.refresh_token), 401, 'invalid_refresh_token')
        await expectProblem(
          await app.request('/v1/user/me', { token: pair.access_token }),
          401,
          'unauthorized',
        )
      }
      expect((await refresh(app, bob.tokens.refresh_token)).status).toBe(200)
      const rows = await app.server.tessera.db
        .selectFrom('sessions')
        .select('revoked_reason')
        .where('user_id', '=', alice.user.id)
        .execute()
      expect(rows.map((r) => r.revoked_reason)).toEqual(['logout_all', 'logout_all', 'logout_all'])
      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('event')
        .where('user_id', '=', alice.user.id)
        .where('event', '=', 'logout_all')
        .execute()
      expect(audit).toHaveLength(1)
    })

    it('logout ends only the presented family and is idempotent', async () => {
      // 204 for unknown tokens too.
      const { email, tokens } = await registerAndLogin(app)
      const other = await login(app, email)
      const logout = (refresh_token: string) =>
        app.request('/v1/user/auth/logout', { json: { refresh_token } })
      expect((await logout(tokens.refresh_token)).status).toBe(204)
      await expectProblem(await refresh(app, tokens.refresh_token), 401, 'invalid_refresh_token')
      expect((await refresh(app, other.refresh_token)).status).toBe(200)
      expect((await logout(tokens.refresh_token)).status).toBe(204)
      expect((await logout(`tessera_rt_${'A'.repeat(43)}`)).status).toBe(204)
      expect((await logout('garbage')).status).toBe(204)
    })

    const badLogoutBodies: Array<[string, unknown]> = [
      ['no refresh_token', {}],
      ['refresh_token null', { refresh_token: null }],
      ['refresh_token a number', { refresh_token: 42 }],
      ['refresh_token empty', { refresh_token: '' }],
      ['refresh_token over 512 characters', { refresh_token: 'x'.repeat(513) }],
    ]
    for (const [name, body] of badLogoutBodies) {
      it(`logout with ${name} is 400 validation_failed`, async () => {
        const problem = (await expectProblem(
          await app.request('/v1/user/auth/logout', { json: body }),
          400,
          'validation_failed',
        )) as { errors?: Array<{ field: string }> }
        expect(problem.errors?.map((e) => e.field)).toEqual(['refresh_token'])
      })
    }

    it('logout-all without a bearer token is 401 unauthorized with WWW-Authenticate', async () => {
      const { tokens } = await registerAndLogin(app)
      const none = await app.request('/v1/user/auth/logout-all', { method: 'POST' })
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer\b/)
      await expectProblem(none, 401, 'unauthorized')
      // A refresh token is not an access token.
      const wrongKind = await app.request('/v1/user/auth/logout-all', {
        method: 'POST',
        token: tokens.refresh_token,
      })
      expect(wrongKind.headers.get('www-authenticate')).toMatch(/error="invalid_token"/)
      await expectProblem(wrongKind, 401, 'unauthorized')
      expect((await refresh(app, tokens.refresh_token)).status).toBe(200)
    })

    const badAuthorization: Array<[string, Record<string, string>, boolean]> = [
      ['no Authorization header', {}, false],
      ['Basic scheme', { authorization: 'Basic dXNlcjpwYXNz' }, true],
      ['Bearer without a token', { authorization: 'Bearer' }, true],
      ['Bearer with two tokens', { authorization: 'Bearer abc def' }, true],
      ['garbage token', { authorization: 'Bearer garbage' }, true],
      ['v4.public with garbage body', { authorization: 'Bearer v4.public.AAAA' }, true],
      ['v4.local header', { authorization: 'Bearer v4.local.AAAAAAAAAAAAAAAAAAAA' }, true],
    ]
    for (const [name, headers, invalidToken] of badAuthorization) {
      it(`GET /me is 401 unauthorized with WWW-Authenticate: ${name}`, async () => {
        const res = await app.request('/v1/user/me', { headers })
        const challenge = res.headers.get('www-authenticate') ?? ''
        expect(challenge).toMatch(/^Bearer\b/)
        // RFC 6750 §3.1: no error code when no credentials were sent, invalid_token when they were
        // bad.
        if (invalidToken) expect(challenge).toContain('error="invalid_token"')
        else expect(challenge).not.toContain('error=')
        await expectProblem(res, 401, 'unauthorized')
      })
    }

    it('GET /me with a valid token is 200 with the user and its (empty) identities', async () => {
      const { tokens, user, email } = await registerAndLogin(app)
      const res = await app.request('/v1/user/me', { token: tokens.access_token })
      expect(res.status).toBe(200)
      expect(res.headers.get('cache-control')).toBe('no-store')
      expect(await res.json()).toEqual({
        id: user.id,
        email,
        email_verified: false,
        display_name: null,
        account_type: 'regular',
        verified: false,
        created_at: expect.stringMatching(RFC3339_UTC),
        identities: [],
      })
    })

    it('PATCH /me sets, keeps and clears the display name', async () => {
      // Trimmed; kept when absent; cleared with null or "".
      const { tokens } = await registerAndLogin(app)
      let res = await patchMe(app, tokens.access_token, { display_name: '  Grace Hopper ' })
      expect(res.status).toBe(200)
      expect(((await res.json()) as UserBody).display_name).toBe('Grace Hopper')
      res = await patchMe(app, tokens.access_token, {})
      expect(((await res.json()) as UserBody).display_name).toBe('Grace Hopper')
      res = await patchMe(app, tokens.access_token, { display_name: 'n'.repeat(100) })
      expect(((await res.json()) as UserBody).display_name).toBe('n'.repeat(100))
      res = await patchMe(app, tokens.access_token, { display_name: null })
      expect(res.status).toBe(200)
      expect(((await res.json()) as UserBody).display_name).toBeNull()
      await patchMe(app, tokens.access_token, { display_name: 'Again' })
      res = await patchMe(app, tokens.access_token, { display_name: '' })
      expect(((await res.json()) as UserBody).display_name).toBeNull()
      const me = (await (
        await app.request('/v1/user/me', { token: tokens.access_token })
      ).json()) as UserBody
      expect(me.display_name).toBeNull()
    })

    const badDisplayNames: Array<[string, unknown]> = [
      ['101 characters', 'n'.repeat(101)],
      ['a number', 42],
      ['an object', { first: 'Grace' }],
      ['an array', ['Grace']],
      ['a boolean', true],
    ]
    for (const [name, value] of badDisplayNames) {
      it(`PATCH /me refuses a display_name that is ${name} with validation_failed`, async () => {
        const { tokens } = await registerAndLogin(app)
        await patchMe(app, tokens.access_token, { display_name: 'Kept' })
        const problem = (await expectProblem(
          await patchMe(app, tokens.access_token, { display_name: value }),
          400,
          'validation_failed',
        )) as { errors?: Array<{ field: string }> }
        expect(problem.errors?.map((e) => e.field)).toEqual(['display_name'])
        const me = (await (
          await app.request('/v1/user/me', { token: tokens.access_token })
        ).json()) as UserBody
        expect(me.display_name).toBe('Kept')
      })
    }

    it('PATCH /me cannot change the email or account type', async () => {
      // Unknown fields are ignored.
      const { tokens, email } = await registerAndLogin(app)
      const res = await patchMe(app, tokens.access_token, {
        display_name: 'Eve',
        email: 'other@example.org',
        account_type: 'superuser',
        verified: true,
      })
      expect(res.status).toBe(200)
      expect(await res.json()).toMatchObject({
        display_name: 'Eve',
        email,
        account_type: 'regular',
        verified: false,
      })
    })

    it('PATCH /me without a token is 401 unauthorized', async () => {
      await expectProblem(
        await app.request('/v1/user/me', { method: 'PATCH', json: { display_name: 'X' } }),
        401,
        'unauthorized',
      )
    })
  })

  describe(`password change [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
        },
      })
    })
    afterAll(() => app.close())

    const NEW_PASSWORD = 'quiet-harbour-lighthouse-17'

    it('a wrong current password is 401 invalid_credentials and changes nothing', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const other = await login(app, email)
      for (const current of ['not-the-password', PASSWORD.toUpperCase(), `${PASSWORD} `]) {
        await expectProblem(
          await changePassword(app, tokens.access_token, current, NEW_PASSWORD),
          401,
          'invalid_credentials',
        )
      }
      expect((await refresh(app, other.refresh_token)).status).toBe(200)
      await login(app, email, PASSWORD)
      await expectProblem(
        await app.request('/v1/user/auth/login', { json: { email, password: NEW_PASSWORD } }),
        401,
        'invalid_credentials',
      )
    })

    const weak: Array<[string, string, RegExp]> = [
      ['too short', 'short', /too short/i],
      ['common', 'password1', /common/i],
      ['repeated', 'xxxxxxxxxx', /repeated/i],
      ['too long', 'ab'.repeat(513), /too long/i],
    ]
    for (const [name, next, why] of weak) {
      it(`a weak new password (${name}) is 400 weak_password and changes nothing`, async () => {
        const { email, tokens } = await registerAndLogin(app)
        const other = await login(app, email)
        const problem = await expectProblem(
          await changePassword(app, tokens.access_token, PASSWORD, next),
          400,
          'weak_password',
        )
        expect(problem.detail).toMatch(why)
        expect((await refresh(app, other.refresh_token)).status).toBe(200)
        await login(app, email, PASSWORD)
      })
    }

    it('missing or non-string fields are validation_failed', async () => {
      const { tokens } = await registerAndLogin(app)
      for (const [body, field] of [
        [{ new_password: NEW_PASSWORD }, 'current_password'],
        [{ current_password: PASSWORD }, 'new_password'],
        [{ current_password: PASSWORD, new_password: 12345678901 }, 'new_password'],
      ] as const) {
        const problem = (await expectProblem(
          await app.request('/v1/user/password', { json: body, token: tokens.access_token }),
          400,
          'validation_failed',
        )) as { errors?: Array<{ field: string }> }
        expect(problem.errors?.map((e) => e.field)).toContain(field)
      }
    })

    it('success: 204, the caller survives, every other session is revoked', async () => {
      // Only the new password logs in.
      const { email, user, tokens } = await registerAndLogin(app)
      const others = [await login(app, email), await login(app, email)]
      const bystander = await registerAndLogin(app)

      const res = await changePassword(app, tokens.access_token, PASSWORD, NEW_PASSWORD)
      expect(res.status).toBe(204)

      expect((await app.request('/v1/user/me', { token: tokens.access_token })).status).toBe(200)
      const rotated = await refresh(app, tokens.refresh_token)
      expect(rotated.status).toBe(200)
      for (const pair of others) {
        await expectProblem(await refresh(app, pair.refresh_token), 401, 'invalid_refresh_token')
        await expectProblem(
          await app.request('/v1/user/me', { token: pair.access_token }),
          401,
          'unauthorized',
        )
      }
      expect((await refresh(app, bystander.tokens.refresh_token)).status).toBe(200)

      await expectProblem(
        await app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
        401,
        'invalid_credentials',
      )
      await login(app, email, NEW_PASSWORD)

      const stored = await app.server.tessera.db
        .selectFrom('users')
        .select('password_hash')
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow()
      // Hashed with the app's parameters (the test app's cheap ones, see test/support/app.ts).
      expect(stored.password_hash).toMatch(/^\$argon2id\$v=19\$m=64,t=1,p=1\$/)
      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select(['event', 'detail'])
        .where('user_id', '=', user.id)
        .where('event', '=', 'password_changed')
        .execute()
      expect(audit).toHaveLength(1)
      expect(JSON.stringify(audit)).not.toContain(NEW_PASSWORD)
    })

    it('the new password is NFKC-normalised like at registration', async () => {
      const { email, tokens } = await registerAndLogin(app)
      expect(
        (await changePassword(app, tokens.access_token, PASSWORD, 'ﬁne-ﬂute-Ｏｒｂｉｔ-９')).status,
      ).toBe(204)
      await login(app, email, 'fine-flute-Orbit-9')
    })

    it('without a token is 401 unauthorized', async () => {
      await expectProblem(
        await app.request('/v1/user/password', {
          json: { current_password: PASSWORD, new_password: NEW_PASSWORD },
        }),
        401,
        'unauthorized',
      )
    })

    it('a federated-only account has no current password to match', async () => {
      const { email, user, tokens } = await registerAndLogin(app, uniqueEmail('fed'))
      await app.server.tessera.db
        .updateTable('users')
        .set({ password_hash: null })
        .where('id', '=', user.id)
        .execute()
      await expectProblem(
        await changePassword(app, tokens.access_token, '', NEW_PASSWORD),
        400,
        'validation_failed',
      )
      for (const current of [' ', PASSWORD]) {
        await expectProblem(
          await changePassword(app, tokens.access_token, current, NEW_PASSWORD),
          401,
          'invalid_credentials',
        )
      }
      await expectProblem(
        await app.request('/v1/user/auth/login', { json: { email, password: NEW_PASSWORD } }),
        401,
        'invalid_credentials',
      )
    })
  })
}
