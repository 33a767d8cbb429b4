/**
 * Logins racing a password change or a disable: the session a login opens must not outlive the
 * change (README, "Passwords and login").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  registerAndLogin,
  type TokenPairBody,
} from '../support/users.js'

const NEW_PASSWORD = 'quieter-harbour-compass-77'
const LOGINS = 20
const TRIALS = 5

function tryLogin(app: TestApp, email: string): Promise<Response> {
  return app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } })
}

/** Every pair a login returned during the race: none may still work. */
async function expectAllDead(app: TestApp, logins: Response[]) {
  let succeeded = 0
  for (const res of logins) {
    if (res.status !== 200) {
      expect([401, 403]).toContain(res.status)
      continue
    }
    succeeded += 1
    const pair = (await res.json()) as TokenPairBody
    await expectProblem(
      await app.request('/v1/user/me', { token: pair.access_token }),
      401,
      'unauthorized',
    )
    await expectProblem(await refresh(app, pair.refresh_token), 401, 'invalid_refresh_token')
  }
  return succeeded
}

/** The sessions of a user that no revocation has ended. */
function liveSessions(app: TestApp, userId: string) {
  return app.server.tessera.db
    .selectFrom('sessions')
    .select('id')
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute()
}

for (const dialect of dialects()) {
  describe(`logins racing credential changes [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
          RATE_LIMIT_REGISTER_PER_IP: '0',
        },
      })
    })
    afterAll(() => app.close())

    it('no session opened by a login racing a password change survives it', async () => {
      for (let trial = 0; trial < TRIALS; trial++) {
        const { email, user, tokens: changer } = await registerAndLogin(app)
        const [changed, ...logins] = await Promise.all([
          app.request('/v1/user/password', {
            token: changer.access_token,
            json: { current_password: PASSWORD, new_password: NEW_PASSWORD },
          }),
          ...Array.from({ length: LOGINS }, () => tryLogin(app, email)),
        ])
        expect(changed.status).toBe(204)
        await expectAllDead(app, logins)
        const live = await liveSessions(app, user.id)
        expect(live, `trial ${trial}`).toHaveLength(1)
        // The changer's own session goes on.
        expect((await app.request('/v1/user/me', { token: changer.access_token })).status).toBe(200)
      }
    })

    it('no session opened by a login racing a disable survives it', async () => {
      for (let trial = 0; trial < TRIALS; trial++) {
        const { email, user } = await registerAndLogin(app)
        const logins = Array.from({ length: LOGINS }, () => tryLogin(app, email))
        // Called directly it would reach the database before any login: let the logins read the
        // user first, by a different margin in each trial, so the disable lands mid-login.
        await new Promise((resolve) => setTimeout(resolve, trial))
        await setDisabled(app.server.tessera, user.id, true)
        await expectAllDead(app, await Promise.all(logins))
        const live = await liveSessions(app, user.id)
        expect(live, `trial ${trial}`).toHaveLength(0)
      }
    })

    it("a disabled user's unexpired access token is refused at /v1/user/me", async () => {
      const { email, user } = await registerAndLogin(app)
      const { access_token: access } = await login(app, email)
      // Disabled without its sessions ended (an operator's SQL, or a login that raced the disable).
      await app.server.tessera.db
        .updateTable('users')
        .set({ disabled: 1 })
        .where('id', '=', user.id)
        .execute()
      await expectProblem(await app.request('/v1/user/me', { token: access }), 401, 'unauthorized')
      await expectProblem(
        await app.request('/v1/user/sessions', { token: access }),
        401,
        'unauthorized',
      )
    })
  })
}
