/**
 * Tessera's own checks (docs/revocation.md, "Tessera's own checks"): `/v1/authz` refuses a held
 * access token once its session ends, whatever ended it, from this process's copy of the log (no
 * database round trip); introspection answers inactive from `exp` on, with no skew.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { recordRevocation } from '../../src/revocations/log.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { authz, eventually, kidOf, REVOKED_AT_AUTHZ } from '../support/revocations.js'
import {
  login,
  PASSWORD,
  refresh,
  refreshPair,
  registerAndLogin,
  type TokenPairBody,
} from '../support/users.js'

const SECRET = 'revocation-authz-service-secret-0123'

for (const dialect of dialects()) {
  describe(`GET /v1/authz refuses revoked tokens [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      // Strict refresh (no reuse interval): a spent token presented again is reuse at once.
      app = await makeTestApp({ dialect, env: { REFRESH_REUSE_INTERVAL: '0' } })
    })
    afterAll(() => app.close())

    /** A user with two sessions: `held` is ended by the scenario, `bystander` of another user. */
    async function scenario(end: (held: TokenPairBody, email: string) => Promise<unknown>) {
      const { email, tokens: held } = await registerAndLogin(app)
      const bystander = (await registerAndLogin(app)).tokens
      expect(await authz(app, held.access_token)).toBe('200')
      await end(held, email)
      await eventually(() => authz(app, held.access_token), REVOKED_AT_AUTHZ)
      expect(await authz(app, bystander.access_token)).toBe('200')
      return held
    }

    it('after logout', async () => {
      await scenario((held) =>
        app.request('/v1/user/auth/logout', { json: { refresh_token: held.refresh_token } }),
      )
    })

    it('after logout-all, for every session of the user', async () => {
      let second: TokenPairBody | undefined
      await scenario(async (held, email) => {
        second = await login(app, email)
        return app.request('/v1/user/auth/logout-all', {
          method: 'POST',
          token: held.access_token,
        })
      })
      await eventually(() => authz(app, second!.access_token), REVOKED_AT_AUTHZ)
    })

    it('after the session is deleted', async () => {
      await scenario(async (held, email) => {
        const other = await login(app, email)
        const { sid } = JSON.parse(
          Buffer.from(held.access_token.split('.')[2]!, 'base64url').subarray(0, -64).toString(),
        ) as { sid: string }
        return app.request(`/v1/user/sessions/${sid}`, {
          method: 'DELETE',
          token: other.access_token,
        })
      })
    })

    it('after refresh-token reuse: the thief and the victim alike', async () => {
      let child: TokenPairBody | undefined
      await scenario(async (held) => {
        child = await refreshPair(app, held.refresh_token)
        expect((await refresh(app, held.refresh_token)).status).toBe(401)
      })
      await eventually(() => authz(app, child!.access_token), REVOKED_AT_AUTHZ)
    })

    it('after a password change, in every other session but not its own', async () => {
      let own: TokenPairBody | undefined
      await scenario(async (_held, email) => {
        own = await login(app, email)
        const res = await app.request('/v1/user/password', {
          json: { current_password: PASSWORD, new_password: `${PASSWORD} renewed` },
          token: own.access_token,
        })
        expect(res.status).toBe(204)
      })
      expect(await authz(app, own!.access_token)).toBe('200')
    })

    it('after a disable', async () => {
      await scenario(async (held) => {
        const me = (await (
          await app.request('/v1/user/me', { token: held.access_token })
        ).json()) as {
          id: string
        }
        await setDisabled(app.server.tessera, me.id, true)
      })
    })

    it('after its signing key is revoked', async () => {
      const isolated = await makeTestApp({ dialect })
      try {
        const { tokens } = await registerAndLogin(isolated)
        expect(await authz(isolated, tokens.access_token)).toBe('200')
        await recordRevocation(isolated.server.tessera.db, isolated.server.tessera.clock, {
          kind: 'key',
          kid: kidOf(tokens.access_token),
        })
        await eventually(() => authz(isolated, tokens.access_token), REVOKED_AT_AUTHZ)
      } finally {
        await isolated.close()
      }
    })
  })

  describe(`introspection without skew [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { SERVICE_SECRET: SECRET } })
    })
    afterAll(() => app.close())

    const active = async (token: string) => {
      const res = await app.request('/v1/token/introspect', {
        json: { token },
        headers: { 'x-service-secret': SECRET },
      })
      return ((await res.json()) as { active: boolean }).active
    }

    it('is inactive from exp on (no skew: its own tokens on its own clock)', async () => {
      const { tokens } = await registerAndLogin(app)
      const { exp } = JSON.parse(
        Buffer.from(tokens.access_token.split('.')[2]!, 'base64url').subarray(0, -64).toString(),
      ) as { exp: string }
      app.clock.set(Date.parse(exp) - 1)
      expect(await active(tokens.access_token)).toBe(true)
      app.clock.set(Date.parse(exp))
      expect(await active(tokens.access_token)).toBe(false)
    })
  })
}
