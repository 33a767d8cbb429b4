/**
 * The passkey API on both dialects (README, "Passkeys"), with a software authenticator
 * (test/support/webauthn.ts); the pages and Chromium's own authenticator are in chromium.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  PASSWORD,
  registerAndLogin,
  tokenPairOf,
  uniqueEmail,
} from '../support/users.js'
import { SoftwareAuthenticator } from '../support/webauthn.js'

const ISSUER = 'http://localhost:8000'
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000'

interface Begun {
  options: {
    challenge: string
    rp: { id: string; name: string }
    rpId: string
    user: { id: string; name: string }
    authenticatorSelection: Record<string, unknown>
    excludeCredentials: unknown[]
    allowCredentials?: unknown[]
    userVerification: string
  }
  challenge: string
  expires_at: string
}

async function begun(res: Response): Promise<Begun> {
  expect(res.status, await res.clone().text()).toBe(200)
  return (await res.json()) as Begun
}

for (const dialect of dialects()) {
  describe(`passkeys through the API [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { TESSERA_ISSUER: ISSUER } })
    })
    afterAll(() => app?.close())

    const registrationOptions = async (token: string) =>
      begun(await app.request('/v1/user/passkeys/registration-options', { method: 'POST', token }))
    const signInOptions = async () =>
      begun(await app.request('/v1/user/auth/passkey/options', { method: 'POST' }))

    async function withPasskey(name = 'Key', authenticator = new SoftwareAuthenticator(ISSUER)) {
      const account = await registerAndLogin(app, uniqueEmail('passkey'))
      const token = account.tokens.access_token
      const options = await registrationOptions(token)
      const res = await app.request('/v1/user/passkeys', {
        token,
        json: {
          name,
          challenge: options.challenge,
          response: authenticator.register(options.options),
        },
      })
      expect(res.status, await res.clone().text()).toBe(201)
      return { ...account, token, authenticator, passkey: (await res.json()) as { id: string } }
    }

    it('registration options: the issuer host as rpID, discoverable, verified', async () => {
      const { tokens, user } = await registerAndLogin(app, uniqueEmail('passkey-options'))
      const options = await registrationOptions(tokens.access_token)
      expect(options.options.rp).toEqual({ id: 'localhost', name: 'Tessera' })
      expect(options.options.authenticatorSelection).toMatchObject({
        residentKey: 'required',
        requireResidentKey: true,
        userVerification: 'required',
      })
      expect(options.options.user.name).toBe(user.email)
      expect(options.challenge).toMatch(/^tessera_wc_[A-Za-z0-9_-]{43}$/)
      await expectProblem(
        await app.request('/v1/user/passkeys/registration-options', { method: 'POST' }),
        401,
        'unauthorized',
      )
    })

    it('registers, lists with names, signs in with it alone, removes it', async () => {
      const { token, user, authenticator, passkey } = await withPasskey('Laptop')
      const listed = await app.request('/v1/user/passkeys', { token })
      expect(await listed.json()).toEqual({
        passkeys: [
          {
            id: passkey.id,
            name: 'Laptop',
            device_type: 'singleDevice',
            backed_up: false,
            created_at: expect.any(String),
            last_used_at: null,
          },
        ],
      })

      const options = await signInOptions()
      expect(options.options).toMatchObject({ rpId: 'localhost', userVerification: 'required' })
      expect(options.options.allowCredentials).toBeUndefined()
      const pair = await tokenPairOf(
        await app.request('/v1/user/auth/passkey', {
          json: { challenge: options.challenge, response: authenticator.assert(options.options) },
        }),
      )
      const me = await app.request('/v1/user/me', { token: pair.access_token })
      expect(((await me.json()) as { id: string }).id).toBe(user.id)
      const events = await app.server.tessera.db
        .selectFrom('audit_events')
        .select(['event', 'detail'])
        .where('user_id', '=', user.id)
        .where('event', 'in', ['passkey_registered', 'passkey_used', 'login_succeeded'])
        .orderBy('at')
        .execute()
      expect(events.map((e) => e.event)).toEqual([
        'login_succeeded',
        'passkey_registered',
        'passkey_used',
        'login_succeeded',
      ])
      // A passkey with user verification is two factors (README, "Passkeys").
      expect(JSON.parse(events[3]!.detail!)).toEqual({ method: 'passkey', amr: 'hwk mfa' })

      const removed = await app.request(`/v1/user/passkeys/${passkey.id}`, {
        method: 'DELETE',
        token,
      })
      expect(removed.status).toBe(204)
      const again = await signInOptions()
      await expectProblem(
        await app.request('/v1/user/auth/passkey', {
          json: { challenge: again.challenge, response: authenticator.assert(again.options) },
        }),
        401,
        'passkey_invalid',
      )
    })

    it('a synced passkey is swk; several per account, each with its name', async () => {
      const first = await withPasskey(
        'Phone',
        new SoftwareAuthenticator(ISSUER, { backupEligible: true }),
      )
      const second = new SoftwareAuthenticator(ISSUER)
      app.clock.advance(1)
      const options = await registrationOptions(first.token)
      expect(options.options.excludeCredentials).toEqual([
        { id: first.authenticator.id, type: 'public-key' },
      ])
      const res = await app.request('/v1/user/passkeys', {
        token: first.token,
        json: {
          name: 'Key',
          challenge: options.challenge,
          response: second.register(options.options),
        },
      })
      expect(res.status).toBe(201)
      const { passkeys } = (await (
        await app.request('/v1/user/passkeys', { token: first.token })
      ).json()) as { passkeys: { name: string; device_type: string; backed_up: boolean }[] }
      expect(passkeys.map((p) => [p.name, p.device_type, p.backed_up])).toEqual([
        ['Phone', 'multiDevice', true],
        ['Key', 'singleDevice', false],
      ])
    })

    it('a challenge works once, expires after 5 minutes, and belongs to its purpose', async () => {
      const { token, authenticator } = await withPasskey()
      const options = await signInOptions()
      const response = authenticator.assert(options.options)
      await tokenPairOf(
        await app.request('/v1/user/auth/passkey', {
          json: { challenge: options.challenge, response },
        }),
      )
      await expectProblem(
        await app.request('/v1/user/auth/passkey', {
          json: { challenge: options.challenge, response },
        }),
        400,
        'challenge_expired',
      )
      const late = await signInOptions()
      app.clock.advance(300_001)
      await expectProblem(
        await app.request('/v1/user/auth/passkey', {
          json: { challenge: late.challenge, response: authenticator.assert(late.options) },
        }),
        400,
        'challenge_expired',
      )
      // A registration challenge does not sign in; a sign-in challenge does not register.
      const fresh = await tokenPairOf(
        await app.request('/v1/user/auth/passkey', {
          json: await (async () => {
            const o = await signInOptions()
            return { challenge: o.challenge, response: authenticator.assert(o.options) }
          })(),
        }),
      )
      const registration = await registrationOptions(fresh.access_token)
      await expectProblem(
        await app.request('/v1/user/auth/passkey', {
          json: {
            challenge: registration.challenge,
            response: authenticator.assert({ ...registration.options, rpId: 'localhost' }),
          },
        }),
        400,
        'challenge_expired',
      )
      const signIn = await signInOptions()
      await expectProblem(
        await app.request('/v1/user/passkeys', {
          token,
          json: {
            name: 'x',
            challenge: signIn.challenge,
            response: new SoftwareAuthenticator(ISSUER).register({
              challenge: signIn.options.challenge,
              rp: { id: 'localhost' },
              user: { id: 'x' },
            }),
          },
        }),
        400,
        'challenge_expired',
      )
    })

    it('an answer for another origin or relying party, or a replayed one, is refused', async () => {
      const { tokens } = await registerAndLogin(app, uniqueEmail('passkey-origin'))
      const token = tokens.access_token
      for (const [authenticator, rpId] of [
        [new SoftwareAuthenticator('http://localhost:9999'), 'localhost'],
        [new SoftwareAuthenticator('https://evil.example'), 'localhost'],
        [new SoftwareAuthenticator(ISSUER), 'evil.example'],
      ] as const) {
        const options = await registrationOptions(token)
        await expectProblem(
          await app.request('/v1/user/passkeys', {
            token,
            json: {
              name: 'x',
              challenge: options.challenge,
              response: authenticator.register({ ...options.options, rp: { id: rpId } }),
            },
          }),
          401,
          'passkey_invalid',
        )
        // The failed attempt spent its challenge.
        await expectProblem(
          await app.request('/v1/user/passkeys', {
            token,
            json: {
              name: 'x',
              challenge: options.challenge,
              response: new SoftwareAuthenticator(ISSUER).register(options.options),
            },
          }),
          400,
          'challenge_expired',
        )
      }
      // A sign-in assertion signed for another relying party.
      const { authenticator } = await withPasskey()
      const options = await signInOptions()
      await expectProblem(
        await app.request('/v1/user/auth/passkey', {
          json: {
            challenge: options.challenge,
            response: authenticator.assert({ ...options.options, rpId: 'evil.example' }),
          },
        }),
        401,
        'passkey_invalid',
      )
      // The counter must grow: an old assertion's counter again is a clone or a replay.
      const used = await signInOptions()
      await tokenPairOf(
        await app.request('/v1/user/auth/passkey', {
          json: { challenge: used.challenge, response: authenticator.assert(used.options) },
        }),
      )
      const before = authenticator.counter
      const next = await signInOptions()
      authenticator.counter = before - 1
      await expectProblem(
        await app.request('/v1/user/auth/passkey', {
          json: { challenge: next.challenge, response: authenticator.assert(next.options) },
        }),
        401,
        'passkey_invalid',
      )
    })

    it('registration and removal need a recent authentication', async () => {
      const { token, passkey } = await withPasskey()
      app.clock.advance(301_000)
      await expectProblem(
        await app.request('/v1/user/passkeys/registration-options', { method: 'POST', token }),
        401,
        'reauthentication_required',
      )
      await expectProblem(
        await app.request(`/v1/user/passkeys/${passkey.id}`, { method: 'DELETE', token }),
        401,
        'reauthentication_required',
      )
      // A password login would now need the passkey as its second factor: re-authenticate.
      const again = await app.request('/v1/user/auth/reauthenticate', {
        token,
        json: { password: PASSWORD },
      })
      expect(again.ok, await again.clone().text()).toBe(true)
      const fresh = token
      for (const id of [UNKNOWN_ID, 'not-a-uuid']) {
        await expectProblem(
          await app.request(`/v1/user/passkeys/${id}`, { method: 'DELETE', token: fresh }),
          404,
          'not_found',
        )
      }
      // Another account's passkey is as unknown as any.
      const other = await registerAndLogin(app, uniqueEmail('passkey-other'))
      await expectProblem(
        await app.request(`/v1/user/passkeys/${passkey.id}`, {
          method: 'DELETE',
          token: other.tokens.access_token,
        }),
        404,
        'not_found',
      )
    })

    it('at most 20 passkeys per account', async () => {
      const { token } = await withPasskey()
      for (let i = 1; i < 20; i += 1) {
        const options = await registrationOptions(token)
        const res = await app.request('/v1/user/passkeys', {
          token,
          json: {
            name: `Key ${i}`,
            challenge: options.challenge,
            response: new SoftwareAuthenticator(ISSUER).register(options.options),
          },
        })
        expect(res.status).toBe(201)
      }
      await expectProblem(
        await app.request('/v1/user/passkeys/registration-options', { method: 'POST', token }),
        409,
        'passkey_limit_reached',
      )
    })

    it('bad bodies are validation_failed naming the field', async () => {
      const { token } = await withPasskey()
      const options = await registrationOptions(token)
      const good = new SoftwareAuthenticator(ISSUER).register(options.options)
      for (const [body, field] of [
        [{ challenge: options.challenge, response: good }, 'name'],
        [{ name: '', challenge: options.challenge, response: good }, 'name'],
        [{ name: 'x'.repeat(65), challenge: options.challenge, response: good }, 'name'],
        [{ name: 'a\u0000b', challenge: options.challenge, response: good }, 'name'],
        [{ name: 'x', response: good }, 'challenge'],
        [{ name: 'x', challenge: options.challenge, response: 'nope' }, 'response'],
        [
          { name: 'x', challenge: options.challenge, response: { ...good, type: 'x' } },
          'response.type',
        ],
        [
          { name: 'x', challenge: options.challenge, response: { ...good, id: 'a'.repeat(1401) } },
          'response.id',
        ],
      ] as const) {
        const problem = (await expectProblem(
          await app.request('/v1/user/passkeys', { token, json: body }),
          400,
          'validation_failed',
        )) as unknown as { errors: { field: string }[] }
        expect(problem.errors[0]!.field).toBe(field)
      }
      await expectProblem(
        await app.request('/v1/user/auth/passkey', { json: { challenge: 'x', response: {} } }),
        400,
        'validation_failed',
      )
      // A well-formed handle nobody issued.
      await expectProblem(
        await app.request('/v1/user/auth/passkey', {
          json: {
            challenge: `tessera_wc_${'A'.repeat(43)}`,
            response: new SoftwareAuthenticator(ISSUER).assert({
              challenge: 'x',
              rpId: 'localhost',
            }),
          },
        }),
        400,
        'challenge_expired',
      )
    })
  })
}

describe('WEBAUTHN_RP_ID', () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig({ LOG_LEVEL: 'silent', ...env })
      return []
    } catch (error) {
      return (error as { problems: string[] }).problems
    }
  }

  it('defaults to the issuer host; may be a parent domain of it, nothing else', () => {
    const issuer = 'https://id.example.org'
    expect(loadConfig({ TESSERA_ISSUER: issuer }).webauthn).toEqual({
      rpId: 'id.example.org',
      origin: issuer,
      rpName: 'Tessera',
    })
    expect(
      loadConfig({ TESSERA_ISSUER: issuer, WEBAUTHN_RP_ID: 'example.org' }).webauthn.rpId,
    ).toBe('example.org')
    for (const rpId of ['org', 'other.org', 'xample.org', 'evil.id.example.org', 'https://x']) {
      expect(problems({ TESSERA_ISSUER: issuer, WEBAUTHN_RP_ID: rpId }), rpId).toContainEqual(
        expect.stringContaining('WEBAUTHN_RP_ID'),
      )
    }
  })
})
