import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { expectProblem, login, refresh, register, uniqueEmail } from '../support/users.js'

for (const dialect of dialects()) {
  describe(`the documented flow [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    it('register, login, me, refresh, replay, reuse, login again, logout', async () => {
      const email = uniqueEmail('Flow')
      const { user } = await register(app, email)
      expect(user).toMatchObject({ email, account_type: 'regular', verified: false })

      const first = await login(app, email.toUpperCase())
      expect(first.token_type).toBe('Bearer')
      expect(first.expires_in).toBe(900)
      expect(first.refresh_expires_in).toBeGreaterThan(2_591_000)
      expect(first.access_token).toMatch(/^v4\.public\./)
      expect(first.refresh_token).toMatch(/^tessera_rt_[A-Za-z0-9_-]{43}$/)

      const me = await app.request('/v1/user/me', { token: first.access_token })
      expect(me.status).toBe(200)
      expect(await me.json()).toMatchObject({ id: user.id, email, identities: [] })

      const rotated = await refresh(app, first.refresh_token)
      expect(rotated.status).toBe(200)
      expect(rotated.headers.get('cache-control')).toBe('no-store')
      const rotatedBytes = await rotated.text()
      const second = JSON.parse(rotatedBytes) as typeof first
      expect(second.refresh_token).not.toBe(first.refresh_token)

      // The spent token again within the reuse interval (10 s): the same answer, byte for byte.
      const replayed = await refresh(app, first.refresh_token)
      expect(replayed.status).toBe(200)
      expect(await replayed.text()).toBe(rotatedBytes)

      // After it: reuse, and the whole family dies with it.
      app.clock.advance(10_000)
      await expectProblem(await refresh(app, first.refresh_token), 401, 'refresh_token_reused')
      await expectProblem(await refresh(app, second.refresh_token), 401, 'invalid_refresh_token')
      // Tessera's own bearer routes check the session, so the access token of the family is dead
      // too.
      await expectProblem(
        await app.request('/v1/user/me', { token: second.access_token }),
        401,
        'unauthorized',
      )

      const third = await login(app, email)
      expect((await app.request('/v1/user/me', { token: third.access_token })).status).toBe(200)
      const out = await app.request('/v1/user/auth/logout', {
        json: { refresh_token: third.refresh_token },
      })
      expect(out.status).toBe(204)
      // A logged-out token is invalid, not "reused": replaying it is not theft.
      await expectProblem(await refresh(app, third.refresh_token), 401, 'invalid_refresh_token')
      // Logout is idempotent.
      const again = await app.request('/v1/user/auth/logout', {
        json: { refresh_token: third.refresh_token },
      })
      expect(again.status).toBe(204)
    })
  })
}
