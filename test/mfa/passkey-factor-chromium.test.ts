/**
 * The pages' MFA step with a passkey, in a real Chromium with its virtual authenticator
 * (README, "Second factors"): the password, then "Use a passkey" on the step page, which the
 * passkey script drives through `/login/mfa/passkey/options` and `POST /login/mfa`.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, launchBrowser, type TestBrowser } from '../support/browser.js'
import { dialects } from '../support/dialects.js'
import { login, PASSWORD, register, uniqueEmail } from '../support/users.js'
import { createIn, pageWithAuthenticator } from '../support/virtual-authenticator.js'

const skip = chromiumMissing()
const TIMEOUT = 60_000

// SQLite only: the browser is the slow part; passkey-factor.test.ts covers both dialects.
for (const dialect of dialects().filter((d) => d === 'sqlite')) {
  describe.skipIf(skip !== undefined)(
    `the MFA step with a passkey in Chromium [${dialect}]`,
    () => {
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

      /** A page with a virtual platform authenticator holding a passkey of `email`'s account. */
      async function pageWithPasskey(email: string): Promise<Page> {
        const { page } = await pageWithAuthenticator(chromium, `${tessera}/login`)
        const { access_token } = await login(app, email)
        const begun = (await (
          await app.request('/v1/user/passkeys/registration-options', {
            method: 'POST',
            token: access_token,
          })
        ).json()) as { options: unknown; challenge: string }
        const response = await createIn(page, begun.options)
        const res = await app.request('/v1/user/passkeys', {
          token: access_token,
          json: { name: 'Laptop', challenge: begun.challenge, response },
        })
        expect(res.status, await res.clone().text()).toBe(201)
        return page
      }

      it(
        'password, then "Use a passkey" on the step page signs in with pwd, hwk and mfa',
        async () => {
          const email = uniqueEmail('mfa-passkey-page')
          await register(app, email)
          const page = await pageWithPasskey(email)
          await page.getByLabel('Email address').fill(email)
          await page.getByLabel('Password').fill(PASSWORD)
          const step = page.waitForResponse((r) => new URL(r.url()).pathname === '/login')
          await page.getByRole('button', { name: 'Sign in', exact: true }).click()
          // The step page may run the passkey script: its CSP allows it.
          expect((await step).headers()['content-security-policy']).toContain("script-src 'self'")
          // Only a passkey: no code form.
          expect(await page.getByLabel('Code from your authenticator app').count()).toBe(0)
          await page.getByRole('button', { name: 'Use a passkey' }).click()
          await page.waitForURL(`${tessera}/account`)
          expect(await page.getByText(`Signed in as ${email}`).count()).toBe(1)
          const amr = await app.server.tessera.db
            .selectFrom('sessions')
            .innerJoin('users', 'users.id', 'sessions.user_id')
            .select('sessions.amr')
            .where('users.email', '=', email)
            .where('sessions.kind', '=', 'browser')
            .executeTakeFirstOrThrow()
          expect(amr.amr).toBe('pwd hwk mfa')
        },
        TIMEOUT,
      )
    },
  )
}
