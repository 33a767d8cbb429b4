import { type ServerType, serve } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerAccount } from '../../src/accounts/accounts.js'
import { type AuthEnv, auth, createVerifier, requireMfa } from '../../src/verify/index.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { enrolTotp, loginWithTotp, mfaTicketOf } from '../support/mfa.js'
import { signedInSuperuser } from '../support/superuser.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  registerAndLogin,
  uniqueEmail,
} from '../support/users.js'
import { SoftwareAuthenticator } from '../support/webauthn.js'

const SECRET = 'mfa-policy-shared-secret-0123456789'

function promote(app: TestApp, token: string, userId: string): Promise<Response> {
  return app.request(`/v1/admin/users/${userId}/promote`, { method: 'POST', token })
}

function resetMfa(app: TestApp, token: string, userId: string, reason = 'lost phone') {
  return app.request(`/v1/admin/users/${userId}/mfa/reset`, { token, json: { reason } })
}

/** A superuser as `tessera user create-superuser` makes one, signed in with the password only. */
async function passwordOnlySuperuser(app: TestApp) {
  const email = uniqueEmail('root')
  const user = await registerAccount(
    app.server.tessera,
    { email, password: PASSWORD, accountType: 'superuser' },
    { ip: null, userAgent: null },
  )
  return { user, email, tokens: await login(app, email) }
}

/** The issuer of the `everyone` app: the origin its passkey ceremonies come from. */
const PASSKEY_ORIGIN = 'http://localhost:8000'

for (const dialect of dialects()) {
  describe(`second factors: policy, admin reset, amr at services [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { SERVICE_SECRET: SECRET } })
    })
    afterAll(async () => {
      await app?.close()
    })

    it('a superuser without MFA cannot use superuser routes: 403', async () => {
      const root = await passwordOnlySuperuser(app)
      const target = await registerAndLogin(app)
      const res = await promote(app, root.tokens.access_token, target.user.id)
      const problem = await expectProblem(res, 403, 'mfa_step_up_required')
      expect(problem.detail).toContain('/v1/user/mfa/step-up')
      // Unknown admin paths answer alike.
      await expectProblem(
        await app.request('/v1/admin/nothing-here', { token: root.tokens.access_token }),
        403,
        'mfa_step_up_required',
      )
      // With a second factor it can.
      const mfaRoot = await signedInSuperuser(app)
      expect((await promote(app, mfaRoot.tokens.access_token, target.user.id)).status).toBe(200)
    })

    it('an admin resets another account’s second factors: audited, sessions end', async () => {
      const root = await signedInSuperuser(app)
      const { email, user, tokens } = await registerAndLogin(app)
      await enrolTotp(app, tokens.access_token)
      await mfaTicketOf(
        await app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
      )
      await expectProblem(
        await resetMfa(app, root.tokens.access_token, user.id, ''),
        400,
        'validation_failed',
      )
      const res = await resetMfa(app, root.tokens.access_token, user.id)
      expect(res.status, await res.clone().text()).toBe(204)
      // The password alone signs in again; the old session has ended.
      await login(app, email)
      expect((await refresh(app, tokens.refresh_token)).status).toBe(401)
      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('detail')
        .where('event', '=', 'mfa_reset')
        .where('user_id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(JSON.parse(audit.detail!)).toEqual({ by: root.user.id, reason: 'lost phone' })
    })

    it('admin reset needs superuser powers with MFA', async () => {
      const root = await passwordOnlySuperuser(app)
      const { user } = await registerAndLogin(app)
      await expectProblem(
        await resetMfa(app, root.tokens.access_token, user.id),
        403,
        'mfa_step_up_required',
      )
      const regular = await registerAndLogin(app)
      await expectProblem(
        await resetMfa(app, regular.tokens.access_token, user.id),
        403,
        'forbidden',
      )
    })

    it('introspection answers amr', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const introspect = (token: string) =>
        app.request('/v1/token/introspect', {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'x-service-secret': SECRET,
          },
          body: new URLSearchParams({ token }).toString(),
        })
      const before = (await (await introspect(tokens.access_token)).json()) as { amr: string[] }
      expect(before.amr).toEqual(['pwd'])
      const { secret } = await enrolTotp(app, tokens.access_token)
      const pair = await loginWithTotp(app, email, secret)
      const after = (await (await introspect(pair.access_token)).json()) as { amr: string[] }
      expect(after.amr).toEqual(['pwd', 'otp', 'mfa'])
    })

    it('requireMfa() at a resource service: a token without mfa in amr is 403', async () => {
      const service = new Hono<AuthEnv>()
      const verifier = createVerifier(
        { keysUrl: `${app.url}/v1/keys` },
        { issuer: app.server.tessera.config.issuer, audience: 'tessera', now: app.clock },
      )
      service.use(auth({ verifier }))
      service.post('/upload', requireMfa(), (c) => c.json({ ok: true }))
      const server = await new Promise<{ s: ServerType; port: number }>((resolve) => {
        const s = serve({ fetch: service.fetch, hostname: '127.0.0.1', port: 0 }, (info) =>
          resolve({ s, port: info.port }),
        )
      })
      try {
        const upload = (token: string) =>
          fetch(`http://127.0.0.1:${server.port}/upload`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}` },
          })
        const { email, tokens } = await registerAndLogin(app)
        const refused = await upload(tokens.access_token)
        await expectProblem(refused, 403, 'mfa_step_up_required')
        const { secret } = await enrolTotp(app, tokens.access_token)
        const pair = await loginWithTotp(app, email, secret)
        expect((await upload(pair.access_token)).status).toBe(200)
      } finally {
        verifier.close()
        await new Promise<void>((resolve) => server.s.close(() => resolve()))
      }
    })
  })

  describe(`MFA_REQUIRED_FOR [${dialect}]`, () => {
    let everyone: TestApp
    let none: TestApp
    beforeAll(async () => {
      everyone = await makeTestApp({
        dialect,
        // The passkey test's authenticator answers for this origin.
        env: { MFA_REQUIRED_FOR: 'everyone', TESSERA_ISSUER: PASSKEY_ORIGIN },
      })
      none = await makeTestApp({ dialect, env: { MFA_REQUIRED_FOR: 'none' } })
    })
    afterAll(async () => {
      await everyone?.close()
      await none?.close()
    })

    it('everyone: a session without a second factor may only enrol one', async () => {
      const { email, tokens } = await registerAndLogin(everyone)
      await expectProblem(
        await everyone.request('/v1/user/sessions', { token: tokens.access_token }),
        403,
        'mfa_step_up_required',
      )
      expect((await everyone.request('/v1/user/me', { token: tokens.access_token })).status).toBe(
        200,
      )
      // Stepping up with a passkey needs its options: not refused by the policy (no passkey here).
      await expectProblem(
        await everyone.request('/v1/user/mfa/step-up/webauthn-options', {
          method: 'POST',
          token: tokens.access_token,
        }),
        400,
        'factor_not_enrolled',
      )
      const { secret } = await enrolTotp(everyone, tokens.access_token)
      const pair = await loginWithTotp(everyone, email, secret)
      expect(
        (await everyone.request('/v1/user/sessions', { token: pair.access_token })).status,
      ).toBe(200)
    })

    it('everyone: a session without a second factor may register a passkey', async () => {
      const { tokens } = await registerAndLogin(everyone)
      const token = tokens.access_token
      const started = await everyone.request('/v1/user/passkeys/registration-options', {
        method: 'POST',
        token,
      })
      expect(started.status, await started.clone().text()).toBe(200)
      const options = (await started.json()) as { challenge: string; options: never }
      const authenticator = new SoftwareAuthenticator(PASSKEY_ORIGIN)
      const registered = await everyone.request('/v1/user/passkeys', {
        token,
        json: {
          name: 'Laptop',
          challenge: options.challenge,
          response: authenticator.register(options.options),
        },
      })
      expect(registered.status, await registered.clone().text()).toBe(201)
      const { id } = (await registered.json()) as { id: string }
      expect((await everyone.request('/v1/user/passkeys', { token })).status).toBe(200)
      // Removing one, or anything else, still needs the second factor.
      await expectProblem(
        await everyone.request(`/v1/user/passkeys/${id}`, { method: 'DELETE', token }),
        403,
        'mfa_step_up_required',
      )
      await expectProblem(
        await everyone.request('/v1/user/sessions', { token }),
        403,
        'mfa_step_up_required',
      )
    })

    it('none: a superuser acts with a password alone', async () => {
      const root = await passwordOnlySuperuser(none)
      const target = await registerAndLogin(none)
      expect((await promote(none, root.tokens.access_token, target.user.id)).status).toBe(200)
    })
  })
}
