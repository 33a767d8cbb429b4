/**
 * Each use case that ends sessions or changes a credential or key writes its own audit event,
 * once, naming the user, the session and the client address; a refused one writes none.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditEventName } from '../../src/audit/audit.js'
import { rotateSigningKey } from '../../src/keys/rotation.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { expectProblem, login, PASSWORD, registerAndLogin } from '../support/users.js'

/** The `sid` claim of a v4.public token: the base64url body minus its 64 signature bytes. */
function sessionIdOf(accessToken: string): string {
  const body = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return (JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as { sid: string }).sid
}

for (const dialect of dialects()) {
  describe(`audit events of the use cases [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_REGISTER_PER_IP: '0', RATE_LIMIT_LOGIN_PER_IP: '0' },
      })
    })
    afterAll(() => app.close())

    function eventsOf(userId: string, event: AuditEventName) {
      return app.server.tessera.db
        .selectFrom('audit_events')
        .select(['session_id', 'ip'])
        .where('user_id', '=', userId)
        .where('event', '=', event)
        .execute()
    }

    it('logout: one event per presentation of a known token, none for unknown ones', async () => {
      const { user, tokens } = await registerAndLogin(app)
      const logout = (refresh_token: string) =>
        app.request('/v1/user/auth/logout', { json: { refresh_token } })
      expect((await logout(tokens.refresh_token)).status).toBe(204)
      expect((await logout(`tessera_rt_${'A'.repeat(43)}`)).status).toBe(204)
      expect((await logout('garbage')).status).toBe(204)
      const events = await eventsOf(user.id, 'logout')
      expect(events).toEqual([{ session_id: sessionIdOf(tokens.access_token), ip: '127.0.0.1' }])
    })

    it('logout-all: one event for the user', async () => {
      const { user, email, tokens } = await registerAndLogin(app)
      await login(app, email)
      const res = await app.request('/v1/user/auth/logout-all', {
        method: 'POST',
        token: tokens.access_token,
      })
      expect(res.status).toBe(204)
      expect(await eventsOf(user.id, 'logout_all')).toEqual([{ session_id: null, ip: '127.0.0.1' }])
    })

    it('session delete: one event naming that session; a refused delete writes none', async () => {
      const { user, email, tokens } = await registerAndLogin(app)
      const other = await login(app, email)
      const remove = (id: string) =>
        app.request(`/v1/user/sessions/${id}`, { method: 'DELETE', token: tokens.access_token })
      await expectProblem(await remove(randomUUID()), 404, 'not_found')
      expect((await remove(sessionIdOf(other.access_token))).status).toBe(204)
      expect(await eventsOf(user.id, 'session_revoked')).toEqual([
        { session_id: sessionIdOf(other.access_token), ip: '127.0.0.1' },
      ])
    })

    it('password change: one event naming the session; a wrong password writes none', async () => {
      const { user, tokens } = await registerAndLogin(app)
      const change = (current_password: string) =>
        app.request('/v1/user/password', {
          token: tokens.access_token,
          json: { current_password, new_password: 'another-lantern-orbit-43' },
        })
      await expectProblem(await change('not-the-password'), 401, 'invalid_credentials')
      expect(await eventsOf(user.id, 'password_changed')).toEqual([])
      expect((await change(PASSWORD)).status).toBe(204)
      expect(await eventsOf(user.id, 'password_changed')).toEqual([
        { session_id: sessionIdOf(tokens.access_token), ip: '127.0.0.1' },
      ])
    })

    it('password login: one event naming the session it opened', async () => {
      const { user, tokens } = await registerAndLogin(app)
      expect(await eventsOf(user.id, 'login_succeeded')).toEqual([
        { session_id: sessionIdOf(tokens.access_token), ip: '127.0.0.1' },
      ])
    })

    it('key rotation: one event naming the new and the retiring key', async () => {
      const { kid, retired } = await rotateSigningKey(app.server.tessera)
      const rows = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('detail')
        .where('event', '=', 'key_rotated')
        .execute()
      expect(rows.map((r) => JSON.parse(r.detail!) as unknown)).toEqual([{ kid, retired }])
    })
  })
}
