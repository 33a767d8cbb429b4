/**
 * Issue item 2: a stolen access token must not become permanent access. Linking and unlinking
 * need a recent authentication of the account (REAUTH_MAX_AGE), and a link flow whose session
 * ended before the callback does not complete (README, "Recent authentication").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  authorizeUrl,
  Browser,
  CLIENT_REDIRECT_URI,
  clientPkce,
  type FakeOidcProvider,
} from '../support/oidc.js'
import {
  expectProblem,
  PASSWORD,
  registerAndLogin,
  type TokenPairBody,
  uniqueEmail,
  uniqueSubject,
} from '../support/users.js'

const MAX_AGE = 300

for (const dialect of dialects()) {
  describe(`recent authentication for account changes [${dialect}]`, () => {
    let federation: Federation
    let app: TestApp
    let idp: FakeOidcProvider

    beforeAll(async () => {
      federation = await startFederation()
      idp = federation.idp
      app = await federation.app({
        dialect,
        env: { REAUTH_MAX_AGE: String(MAX_AGE), RATE_LIMIT_LOGIN_PER_ACCOUNT: '3' },
      })
    }, 60_000)
    afterAll(() => federation?.close())

    function authorize(browser: Browser, token: string | undefined, provider = 'google') {
      const pkce = clientPkce()
      return browser.fetch(authorizeUrl(provider, `&${pkce.query}`), {
        headers: {
          accept: 'application/json',
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
      })
    }

    /** A whole link flow in a fresh browser, up to the redirect back to the client. */
    async function link(token: string, provider = 'google'): Promise<URL> {
      const browser = new Browser(app.url)
      const res = await authorize(browser, token, provider)
      expect(res.status, await res.clone().text()).toBe(200)
      return (
        await browser.follow(
          ((await res.json()) as { authorization_url: string }).authorization_url,
        )
      ).url
    }

    const reauthenticate = (token: string, password: string) =>
      app.request('/v1/user/auth/reauthenticate', { token, json: { password } })

    async function identitiesOf(userId: string) {
      return app.server.tessera.db
        .selectFrom('identities')
        .select(['provider', 'subject'])
        .where('user_id', '=', userId)
        .execute()
    }

    async function audit(userId: string, event: string) {
      const rows = await app.server.tessera.db
        .selectFrom('audit_events')
        .select(['session_id', 'detail'])
        .where('user_id', '=', userId)
        .where('event', '=', event)
        .execute()
      return rows.map((r) => ({
        session_id: r.session_id,
        detail: r.detail === null ? null : JSON.parse(r.detail),
      }))
    }

    async function expectStepUp(res: Response) {
      const header = res.headers.get('www-authenticate')
      await expectProblem(res, 401, 'reauthentication_required')
      expect(header).toMatch(
        new RegExp(
          '^Bearer realm="tessera", error="insufficient_user_authentication", ' +
            `error_description="[^"]+", max_age=${MAX_AGE}$`,
        ),
      )
    }

    it('the attack: a stolen token older than REAUTH_MAX_AGE links nothing', async () => {
      // The thief's identity is not linked.
      const victim = await registerAndLogin(app)
      const stolen = victim.tokens.access_token
      app.clock.advance((MAX_AGE + 1) * 1000)
      // The access token itself is still good (15 minutes)...
      expect((await app.request('/v1/user/me', { token: stolen })).status).toBe(200)
      // ...but the attacker's link attempt is refused before any flow starts.
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('attacker'), email_verified: true }
      const attacker = new Browser(app.url)
      await expectStepUp(await authorize(attacker, stolen))
      expect(attacker.cookies(new URL(app.url).host)).toEqual({})
      const started = await app.server.tessera.db
        .selectFrom('oauth_states')
        .select('state_hash')
        .where('link_user_id', '=', victim.user.id)
        .execute()
      expect(started).toEqual([])
      expect(await identitiesOf(victim.user.id)).toEqual([])
      // Nor can the attacker refresh the authentication without the password.
      await expectProblem(
        await reauthenticate(stolen, 'not the password'),
        401,
        'invalid_credentials',
      )
      await expectStepUp(await authorize(attacker, stolen))
      expect(await identitiesOf(victim.user.id)).toEqual([])
    })

    it('within the window after re-authenticating, the owner links', async () => {
      // The owner is told (audit) and sees the link.
      const owner = await registerAndLogin(app)
      const token = owner.tokens.access_token
      app.clock.advance((MAX_AGE + 1) * 1000)
      await expectStepUp(await authorize(new Browser(app.url), token))
      expect(await reauthenticate(token, PASSWORD)).toHaveProperty('status', 204)
      const sid = (await audit(owner.user.id, 'reauthenticated'))[0]?.session_id
      expect(sid).toBeTruthy()

      app.clock.advance((MAX_AGE - 1) * 1000)
      const sub = uniqueSubject()
      idp.current = { sub, email: uniqueEmail('owner-google'), email_verified: true }
      const url = await link(token)
      expect(url.searchParams.get('linked')).toBe('google')
      expect(await identitiesOf(owner.user.id)).toEqual([{ provider: 'google', subject: sub }])
      expect(await audit(owner.user.id, 'identity_linked')).toEqual([
        { session_id: sid, detail: { provider: 'google' } },
      ])

      const listed = await app.request('/v1/user/sessions', { token })
      expect(listed.status).toBe(200)
      const body = (await listed.json()) as {
        identities: { provider: string; email: string | null; linked_at: string }[]
      }
      expect(body.identities).toEqual([
        {
          provider: 'google',
          email: idp.current.email,
          linked_at: new Date(Math.floor(app.clock() / 1000) * 1000)
            .toISOString()
            .replace('.000Z', 'Z'),
        },
      ])
    })

    it('unlinking needs a recent authentication too, audited with the provider', async () => {
      const owner = await registerAndLogin(app)
      const token = owner.tokens.access_token
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('unlink'), email_verified: true }
      expect((await link(token)).searchParams.get('linked')).toBe('google')
      app.clock.advance((MAX_AGE + 1) * 1000)
      await expectStepUp(
        await app.request('/v1/user/identities/google', { method: 'DELETE', token }),
      )
      expect(await identitiesOf(owner.user.id)).toHaveLength(1)
      expect((await reauthenticate(token, PASSWORD)).status).toBe(204)
      expect(
        (await app.request('/v1/user/identities/google', { method: 'DELETE', token })).status,
      ).toBe(204)
      expect(await identitiesOf(owner.user.id)).toEqual([])
      expect((await audit(owner.user.id, 'identity_unlinked')).map((e) => e.detail)).toEqual([
        { provider: 'google' },
      ])
    })

    it('a link started, then logout-all, then the callback: refused, nothing linked', async () => {
      const victim = await registerAndLogin(app)
      const token = victim.tokens.access_token
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('late-link'), email_verified: true }
      const browser = new Browser(app.url)
      const res = await authorize(browser, token)
      expect(res.status).toBe(200)
      const callback = await browser.toCallback(
        ((await res.json()) as { authorization_url: string }).authorization_url,
      )
      // The owner notices and ends every session while the flow is at the provider.
      const other = await app.request('/v1/user/auth/login', {
        json: { email: victim.email, password: PASSWORD },
      })
      const owner = (await other.json()) as TokenPairBody
      expect(
        (
          await app.request('/v1/user/auth/logout-all', {
            method: 'POST',
            token: owner.access_token,
          })
        ).status,
      ).toBe(204)
      const back = await browser.fetch(callback)
      expect(back.status).toBe(302)
      const location = new URL(back.headers.get('location')!)
      expect(`${location.origin}${location.pathname}`).toBe(CLIENT_REDIRECT_URI)
      expect(location.searchParams.get('error')).toBe('session_ended')
      expect(location.searchParams.get('linked')).toBeNull()
      expect(await identitiesOf(victim.user.id)).toEqual([])
    })

    it('a link started, then a password change in another session, then the callback', async () => {
      // refused, nothing linked.
      const victim = await registerAndLogin(app)
      const stolen = victim.tokens.access_token
      idp.current = { sub: uniqueSubject(), email: uniqueEmail('pw-link'), email_verified: true }
      const browser = new Browser(app.url)
      const res = await authorize(browser, stolen)
      expect(res.status).toBe(200)
      const callback = await browser.toCallback(
        ((await res.json()) as { authorization_url: string }).authorization_url,
      )
      const owner = (await (
        await app.request('/v1/user/auth/login', {
          json: { email: victim.email, password: PASSWORD },
        })
      ).json()) as TokenPairBody
      const changed = await app.request('/v1/user/password', {
        token: owner.access_token,
        json: { current_password: PASSWORD, new_password: 'a-brand-new-passphrase-93' },
      })
      expect(changed.status).toBe(204)
      const back = await browser.fetch(callback)
      expect(new URL(back.headers.get('location')!).searchParams.get('error')).toBe('session_ended')
      expect(await identitiesOf(victim.user.id)).toEqual([])
    })

    it('re-authentication counts on the user’s own password budget', async () => {
      // Shared with password change, not with login.
      const user = await registerAndLogin(app)
      const token = user.tokens.access_token
      for (let i = 0; i < 3; i += 1)
        await expectProblem(
          await reauthenticate(token, `wrong guess ${i}`),
          401,
          'invalid_credentials',
        )
      await expectProblem(await reauthenticate(token, PASSWORD), 429, 'rate_limited')
      // The same budget guards the current password at password change.
      await expectProblem(
        await app.request('/v1/user/password', {
          token,
          json: { current_password: PASSWORD, new_password: 'another plausible lantern 7' },
        }),
        429,
        'rate_limited',
      )
      // A stolen token's guesses never lock the owner out of logging in (README, "Passwords and
      // login").
      expect(
        (
          await app.request('/v1/user/auth/login', {
            json: { email: user.email, password: PASSWORD },
          })
        ).status,
      ).toBe(200)
    })

    it('re-authentication needs a live session and a valid body', async () => {
      const user = await registerAndLogin(app)
      const token = user.tokens.access_token
      await expectProblem(
        await app.request('/v1/user/auth/reauthenticate', { token, json: {} }),
        400,
        'validation_failed',
      )
      await expectProblem(
        await app.request('/v1/user/auth/reauthenticate', { json: { password: PASSWORD } }),
        401,
        'unauthorized',
      )
      expect(
        (await app.request('/v1/user/auth/logout-all', { method: 'POST', token })).status,
      ).toBe(204)
      await expectProblem(await reauthenticate(token, PASSWORD), 401, 'unauthorized')
    })

    it('a federated-only account re-authenticates by signing in again', async () => {
      // With its identity.
      const sub = uniqueSubject()
      idp.current = { sub, email: uniqueEmail('fed-only'), email_verified: true }
      const login = async () => {
        const pkce = clientPkce()
        const browser = new Browser(app.url)
        const res = await browser.fetch(authorizeUrl('google', `&${pkce.query}`), {
          headers: { accept: 'application/json' },
        })
        const { url } = await browser.follow(
          ((await res.json()) as { authorization_url: string }).authorization_url,
        )
        const exchanged = await app.request('/v1/user/auth/oauth/exchange', {
          json: { code: url.searchParams.get('code'), code_verifier: pkce.verifier },
        })
        expect(exchanged.status, await exchanged.clone().text()).toBe(200)
        return (await exchanged.json()) as TokenPairBody
      }
      const first = await login()
      app.clock.advance((MAX_AGE + 1) * 1000)
      idp.current = {
        sub: uniqueSubject(),
        email: uniqueEmail('fed-only-gitlab'),
        email_verified: true,
      }
      await expectStepUp(await authorize(new Browser(app.url), first.access_token, 'gitlab'))
      // No password to re-enter: the same answer as a wrong one.
      await expectProblem(
        await reauthenticate(first.access_token, PASSWORD),
        401,
        'invalid_credentials',
      )
      idp.current = { sub, email: 'ignored@example.org', email_verified: true }
      const again = await login()
      idp.current = {
        sub: uniqueSubject(),
        email: uniqueEmail('fed-only-gitlab'),
        email_verified: true,
      }
      expect((await link(again.access_token, 'gitlab')).searchParams.get('linked')).toBe('gitlab')
    })
  })
}
