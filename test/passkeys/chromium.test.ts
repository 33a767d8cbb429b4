/**
 * Passkeys in a real Chromium with its virtual authenticator (README, "Passkeys"): registration
 * from the account page, passwordless sign-in from the sign-in page and the API, the MFA step's
 * domain functions with real assertions, removal, a wrong relying-party id, and single-use,
 * expiring challenges. WebAuthn needs a secure context: Tessera's issuer here is
 * `http://localhost:P`, which Chromium counts as one (the server listens on 127.0.0.1).
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  authenticationOptionsForUser,
  verifyPasskeyForUser,
} from '../../src/passkeys/authentication.js'
import { hasPasskeys } from '../../src/passkeys/passkeys.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, launchBrowser, type TestBrowser } from '../support/browser.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  PASSWORD,
  register,
  tokenPairOf,
  uniqueEmail,
} from '../support/users.js'
import { assertIn, createIn, pageWithAuthenticator } from '../support/virtual-authenticator.js'

const skip = chromiumMissing()
const TIMEOUT = 60_000

interface Options {
  options: Record<string, unknown> & { rp?: { id?: string } }
  challenge: string
  expires_at: string
}

async function optionsOf(res: Response): Promise<Options> {
  expect(res.status, await res.clone().text()).toBe(200)
  return (await res.json()) as Options
}

// SQLite only: the browser is the slow part, and api.test.ts covers PostgreSQL through the API.
for (const dialect of dialects().filter((d) => d === 'sqlite')) {
  describe.skipIf(skip !== undefined)(`passkeys in Chromium [${dialect}]`, () => {
    let chromium: TestBrowser
    let app: TestApp
    let tessera: string

    beforeAll(async () => {
      app = await makeTestApp({ dialect, issuerHost: 'localhost' })
      tessera = app.issuer
      chromium = await launchBrowser()
    }, TIMEOUT)
    afterAll(async () => {
      await chromium?.close()
      await app?.close()
    })

    /** Registers a passkey for `email` through the API, in `page`'s authenticator. */
    async function registerThroughApi(page: Page, email: string, name = 'Laptop') {
      const { access_token } = await login(app, email)
      const begun = await optionsOf(
        await app.request('/v1/user/passkeys/registration-options', {
          method: 'POST',
          token: access_token,
        }),
      )
      const response = await createIn(page, begun.options)
      const res = await app.request('/v1/user/passkeys', {
        token: access_token,
        json: { name, challenge: begun.challenge, response },
      })
      expect(res.status, await res.clone().text()).toBe(201)
      return { accessToken: access_token, passkey: (await res.json()) as { id: string } }
    }

    it(
      'adds a passkey on the account page, signs in with it alone, removes it, then is refused',
      async () => {
        const { email } = await register(app, uniqueEmail('passkey-page'))
        // Before the passkey: a password login then needs it as its second factor.
        const { access_token } = await login(app, email)
        const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
        await page.getByLabel('Email address').fill(email)
        await page.getByLabel('Password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Sign in', exact: true }).click()
        await page.waitForURL(`${tessera}/account`)

        await page.getByLabel('Passkey name').fill('Work laptop')
        await page.getByRole('button', { name: 'Add a passkey' }).click()
        await page.waitForURL(`${tessera}/account?done=passkey_added#passkeys`)
        expect(await page.getByRole('status').first().textContent()).toContain(
          'The passkey is added',
        )
        expect(await page.getByText('Work laptop', { exact: true }).count()).toBe(1)

        // Listed by the API too, with what it is.
        const listed = await app.request('/v1/user/passkeys', { token: access_token })
        const { passkeys } = (await listed.json()) as {
          passkeys: { name: string; device_type: string; last_used_at: string | null }[]
        }
        expect(passkeys).toMatchObject([
          { name: 'Work laptop', device_type: 'singleDevice', last_used_at: null },
        ])

        // Passwordless: sign out, then the passkey alone signs in.
        await page.locator('header').getByRole('button', { name: 'Sign out', exact: true }).click()
        await page.waitForURL(`${tessera}/login?done=signed_out`)
        await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
        await page.waitForURL(`${tessera}/account`)
        expect(await page.getByText(`Signed in as ${email}`).count()).toBe(1)
        expect(await page.getByText('last used never').count()).toBe(0)

        // Removal (the passkey sign-in was just now: recent enough).
        await page.getByRole('button', { name: 'Remove Work laptop' }).click()
        await page.waitForURL(`${tessera}/account?done=passkey_removed#passkeys`)
        expect(await page.getByText('No passkey is registered.').count()).toBe(1)

        // The authenticator still holds the credential; Tessera no longer accepts it.
        await page.locator('header').getByRole('button', { name: 'Sign out', exact: true }).click()
        await page.waitForURL(`${tessera}/login?done=signed_out`)
        await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
        await expect
          .poll(() => page.getByRole('alert').first().textContent())
          .toContain('The passkey was not accepted.')
        expect(new URL(page.url()).pathname).toBe('/login/passkey')
      },
      TIMEOUT,
    )

    it(
      'the account page asks for the password when the sign-in is not recent',
      async () => {
        const { email } = await register(app, uniqueEmail('passkey-step-up'))
        const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
        await page.getByLabel('Email address').fill(email)
        await page.getByLabel('Password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Sign in', exact: true }).click()
        await page.waitForURL(`${tessera}/account`)
        app.clock.advance(301_000)
        await page.reload()
        await page.getByLabel('Passkey name').fill('Phone')
        await page.locator('#passkey_password').fill('not-the-password')
        await page.getByRole('button', { name: 'Add a passkey' }).click()
        await expect
          .poll(() => page.locator('[data-passkey-notice]').textContent())
          .toContain('Invalid email or password')
        await page.locator('#passkey_password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Add a passkey' }).click()
        await page.waitForURL(`${tessera}/account?done=passkey_added#passkeys`)
        expect(await page.getByText('Phone', { exact: true }).count()).toBe(1)
      },
      TIMEOUT,
    )

    it(
      'passwordless login through the API; its challenge works once and expires',
      async () => {
        const { email, user } = await register(app, uniqueEmail('passkey-api'))
        const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
        await registerThroughApi(page, email)

        const begun = await optionsOf(
          await app.request('/v1/user/auth/passkey/options', { method: 'POST' }),
        )
        expect(begun.options).toMatchObject({ rpId: 'localhost', userVerification: 'required' })
        expect(begun.options.allowCredentials).toBeUndefined()
        const response = await assertIn(page, begun.options)
        const pair = await tokenPairOf(
          await app.request('/v1/user/auth/passkey', {
            json: { challenge: begun.challenge, response },
          }),
        )
        const me = await app.request('/v1/user/me', { token: pair.access_token })
        expect(((await me.json()) as { id: string }).id).toBe(user.id)

        // The same answer again: the challenge is spent.
        await expectProblem(
          await app.request('/v1/user/auth/passkey', {
            json: { challenge: begun.challenge, response },
          }),
          400,
          'challenge_expired',
        )

        // An answer after the challenge's 5 minutes.
        const late = await optionsOf(
          await app.request('/v1/user/auth/passkey/options', { method: 'POST' }),
        )
        const lateResponse = await assertIn(page, late.options)
        app.clock.advance(300_001)
        await expectProblem(
          await app.request('/v1/user/auth/passkey', {
            json: { challenge: late.challenge, response: lateResponse },
          }),
          400,
          'challenge_expired',
        )

        // An answer to another challenge than the one named.
        const first = await optionsOf(
          await app.request('/v1/user/auth/passkey/options', { method: 'POST' }),
        )
        const second = await optionsOf(
          await app.request('/v1/user/auth/passkey/options', { method: 'POST' }),
        )
        const toFirst = await assertIn(page, first.options)
        await expectProblem(
          await app.request('/v1/user/auth/passkey', {
            json: { challenge: second.challenge, response: toFirst },
          }),
          401,
          'passkey_invalid',
        )
      },
      TIMEOUT,
    )

    it(
      'the MFA step’s domain functions verify a real assertion of the user’s own passkey',
      async () => {
        const t = app.server.tessera
        const { email, user } = await register(app, uniqueEmail('passkey-mfa'))
        const other = await register(app, uniqueEmail('passkey-mfa-other'))
        expect(await hasPasskeys(t.db, user.id)).toBe(false)
        const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
        const { passkey } = await registerThroughApi(page, email, 'Key')
        expect(await hasPasskeys(t.db, user.id)).toBe(true)

        const begun = await authenticationOptionsForUser(t, user.id)
        expect(begun.options.allowCredentials).toHaveLength(1)
        expect(begun.options.userVerification).toBe('preferred')
        const response = (await assertIn(page, begun.options)) as never
        const verified = await verifyPasskeyForUser(t, {
          userId: user.id,
          challenge: begun.challenge,
          response,
        })
        expect(verified).toEqual({ passkeyId: passkey.id, amr: ['hwk', 'mfa'] })
        // Single use.
        await expect(
          verifyPasskeyForUser(t, { userId: user.id, challenge: begun.challenge, response }),
        ).rejects.toMatchObject({ code: 'challenge_expired' })

        // A challenge made for this user is no one else's.
        const mine = await authenticationOptionsForUser(t, user.id)
        const mineResponse = (await assertIn(page, mine.options)) as never
        await expect(
          verifyPasskeyForUser(t, {
            userId: other.user.id,
            challenge: mine.challenge,
            response: mineResponse,
          }),
        ).rejects.toMatchObject({ code: 'challenge_expired' })

        // Expired after 5 minutes.
        const late = await authenticationOptionsForUser(t, user.id)
        const lateResponse = (await assertIn(page, late.options)) as never
        app.clock.advance(300_001)
        await expect(
          verifyPasskeyForUser(t, {
            userId: user.id,
            challenge: late.challenge,
            response: lateResponse,
          }),
        ).rejects.toMatchObject({ code: 'challenge_expired' })

        // No passkeys, no options.
        await expect(authenticationOptionsForUser(t, other.user.id)).rejects.toMatchObject({
          code: 'not_found',
        })
      },
      TIMEOUT,
    )

    it(
      'a signature counter that went backwards (a cloned authenticator) is refused',
      async () => {
        const t = app.server.tessera
        const { email, user } = await register(app, uniqueEmail('passkey-counter'))
        const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
        const { passkey } = await registerThroughApi(page, email)
        // As if another copy of the key had been used 1000 times meanwhile.
        await t.db
          .updateTable('passkeys')
          .set({ counter: 1000 })
          .where('id', '=', passkey.id)
          .execute()
        const begun = await authenticationOptionsForUser(t, user.id)
        const response = (await assertIn(page, begun.options)) as never
        await expect(
          verifyPasskeyForUser(t, { userId: user.id, challenge: begun.challenge, response }),
        ).rejects.toMatchObject({ code: 'passkey_invalid' })
        const failure = await t.db
          .selectFrom('audit_events')
          .select('detail')
          .where('user_id', '=', user.id)
          .where('event', '=', 'passkey_failed')
          .executeTakeFirstOrThrow()
        expect(JSON.parse(failure.detail!)).toMatchObject({ reason: 'counter_regressed' })
      },
      TIMEOUT,
    )

    it(
      'registration needs a recent authentication, and an authenticator registers once',
      async () => {
        const { email } = await register(app, uniqueEmail('passkey-recent'))
        const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
        const { accessToken } = await registerThroughApi(page, email)
        const again = await optionsOf(
          await app.request('/v1/user/passkeys/registration-options', {
            method: 'POST',
            token: accessToken,
          }),
        )
        expect(again.options.excludeCredentials).toHaveLength(1)
        // The authenticator holding the excluded credential refuses to make another.
        await expect(createIn(page, again.options)).rejects.toThrow()
        app.clock.advance(301_000)
        await expectProblem(
          await app.request('/v1/user/passkeys/registration-options', {
            method: 'POST',
            token: accessToken,
          }),
          401,
          'reauthentication_required',
        )
      },
      TIMEOUT,
    )
  })
}

describe.skipIf(skip !== undefined)('passkeys for another relying party [sqlite]', () => {
  let chromium: TestBrowser
  let app: TestApp
  let tessera: string

  beforeAll(async () => {
    // The pages' origin is id.localhost; the relying party Tessera expects is its parent.
    app = await makeTestApp({ issuerHost: 'id.localhost', env: { WEBAUTHN_RP_ID: 'localhost' } })
    tessera = app.issuer
    chromium = await launchBrowser()
  }, TIMEOUT)
  afterAll(async () => {
    await chromium?.close()
    await app?.close()
  })

  it(
    'a credential made for another relying-party id than the configured one is refused',
    async () => {
      const { email } = await register(app, uniqueEmail('passkey-rp'))
      const { access_token } = await login(app, email)
      const begun = await optionsOf(
        await app.request('/v1/user/passkeys/registration-options', {
          method: 'POST',
          token: access_token,
        }),
      )
      expect(begun.options.rp).toMatchObject({ id: 'localhost' })
      const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
      // A credential scoped to the page's own host instead, as a look-alike server would ask.
      const response = await createIn(page, {
        ...begun.options,
        rp: { ...begun.options.rp, id: 'id.localhost' },
      })
      await expectProblem(
        await app.request('/v1/user/passkeys', {
          token: access_token,
          json: { name: 'Elsewhere', challenge: begun.challenge, response },
        }),
        401,
        'passkey_invalid',
      )
      const listed = await app.request('/v1/user/passkeys', { token: access_token })
      expect(await listed.json()).toEqual({ passkeys: [] })
    },
    TIMEOUT,
  )
})
