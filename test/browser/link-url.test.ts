/**
 * The single-use link URL in a real Chromium (README, "Linking from an API client"): a front-end
 * at `http://localhost:<p1>`, another site than Tessera at `http://127.0.0.1:<p2>`, holds only a
 * bearer token (from a CORS login), asks for a link URL with it and navigates the browser there;
 * the CILogon stand-in signs the user in and the password account becomes academic. No cookie of
 * Tessera exists before the navigation, and none is ever set from the front-end's site.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, freePort, launchBrowser, type TestBrowser } from '../support/browser.js'
import { dialects } from '../support/dialects.js'
import { federationEnv } from '../support/federation.js'
import { type FrontEnd, startFrontEnd } from '../support/front-end.js'
import { type FakeOidcProvider, startOidcProvider } from '../support/oidc.js'
import { PASSWORD, register, uniqueEmail, uniqueSubject } from '../support/users.js'

/** The front-end's script: log in with the password, then ask for a link URL with the token. */
function linkUrlFromFrontEnd(page: Page, tessera: string, email: string): Promise<string> {
  return page.evaluate(
    async ([tessera, email, password]) => {
      const login = await fetch(`${tessera}/v1/user/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
      })
      const { access_token } = (await login.json()) as { access_token: string }
      const res = await fetch(`${tessera}/v1/user/identities/cilogon/link-url`, {
        method: 'POST',
        headers: { authorization: `Bearer ${access_token}` },
      })
      if (res.status !== 201) throw new Error(`link-url answered ${res.status}`)
      return ((await res.json()) as { url: string }).url
    },
    [tessera, email, PASSWORD] as const,
  )
}

for (const dialect of dialects()) {
  describe.skipIf(chromiumMissing() !== undefined)(`link URL in Chromium [${dialect}]`, () => {
    let frontEnd: FrontEnd
    let idp: FakeOidcProvider
    let app: TestApp
    let browser: TestBrowser
    let issuer: string

    beforeAll(async () => {
      const port = await freePort()
      issuer = `http://127.0.0.1:${port}`
      ;[frontEnd, idp, browser] = await Promise.all([
        startFrontEnd(),
        startOidcProvider({ tesseraIssuer: issuer }),
        launchBrowser(),
      ])
      app = await makeTestApp({
        dialect,
        env: {
          ...federationEnv(idp),
          TESSERA_ISSUER: issuer,
          PORT: String(port),
          CORS_ORIGINS: frontEnd.origin,
        },
      })
    }, 60_000)
    afterAll(async () => {
      await browser?.close()
      await app?.close()
      await idp?.close()
      await frontEnd?.close()
    })

    it('a front-end on another site links CILogon: the account becomes academic', async () => {
      const { email, user } = await register(app)
      idp.current = { sub: uniqueSubject('cilogon'), email: uniqueEmail('institution') }
      const { page, context } = await browser.newPage()
      await page.goto(`${frontEnd.origin}/`)

      const url = await linkUrlFromFrontEnd(page, issuer, email)
      expect(url.startsWith(`${issuer}/link/tessera_lt_`)).toBe(true)
      // Nothing of Tessera's is in this browser before it follows the link.
      expect(await context.cookies(issuer)).toEqual([])

      await page.goto(url)
      await page.waitForURL(`${issuer}/link/done?linked=cilogon`, { timeout: 60_000 })
      await page.getByRole('heading', { name: 'CILogon linked' }).waitFor()
      expect(await page.textContent('main')).toContain('You can close this window.')
      // The flow's binding was first-party, and is cleared now that the flow is over.
      const left = await context.cookies(issuer)
      expect(left.filter((c) => c.name.startsWith('tessera_oauth_'))).toEqual([])
      expect(await context.cookies(frontEnd.origin)).toEqual([])

      const account = await app.server.tessera.db
        .selectFrom('users')
        .select(['account_type', 'verified'])
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(account).toEqual({ account_type: 'academic', verified: 1 })
      const identities = await app.server.tessera.db
        .selectFrom('identities')
        .select('provider')
        .where('user_id', '=', user.id)
        .execute()
      expect(identities).toEqual([{ provider: 'cilogon' }])
    }, 120_000)
  })
}
