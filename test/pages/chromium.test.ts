/**
 * Tessera's pages in a real Chromium (issue 11; README, "Pages"), on SQLite: Tessera listens at
 * `http://127.0.0.1:P2` (its TESSERA_ISSUER), the oidc-provider stand-in plays CILogon and Google,
 * and a platform front-end is another site, `http://localhost:P1` (front-end.ts). Every request
 * the flows make to Tessera is a top-level navigation (or the page's own stylesheet), so its
 * cookies are first-party whatever site the front-end is on.
 */
import type { Page, Request } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { chromiumMissing, freePort, launchBrowser, type TestBrowser } from '../support/browser.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  register,
  tokenPairOf,
  uniqueEmail,
  uniqueSubject,
} from '../support/users.js'
import { type FrontEnd, startFrontEnd } from './front-end.js'

const skip = chromiumMissing()
const TIMEOUT = 60_000

describe.skipIf(skip !== undefined)('the pages in Chromium [sqlite]', () => {
  let chromium: TestBrowser
  let federation: Federation
  let app: TestApp
  let frontEnd: FrontEnd
  let tessera: string

  beforeAll(async () => {
    const [port, frontEndPort] = [await freePort(), await freePort()]
    tessera = `http://127.0.0.1:${port}`
    frontEnd = await startFrontEnd(frontEndPort, tessera)
    federation = await startFederation({ tesseraIssuer: tessera })
    app = await federation.app({
      env: {
        PORT: String(port),
        OAUTH_REDIRECT_URIS: frontEnd.callback,
        CORS_ORIGINS: new URL(frontEnd.url).origin,
      },
    })
    chromium = await launchBrowser()
  }, TIMEOUT)
  afterAll(async () => {
    await chromium?.close()
    await federation?.close()
    await frontEnd?.close()
  })

  /** Every request to Tessera was a main-frame navigation or the page's stylesheet or script. */
  function expectFirstPartyOnly(requests: Request[]) {
    const toTessera = requests.filter((r) => r.url().startsWith(tessera))
    expect(toTessera.length).toBeGreaterThan(0)
    for (const request of toTessera) {
      const navigation = request.isNavigationRequest() && request.resourceType() === 'document'
      const stylesheet =
        request.resourceType() === 'stylesheet' && request.url().includes('/assets/tessera.css')
      // The sign-in and account pages' passkey script (README, "Passkeys"); it fetches nothing
      // unless a passkey is used.
      const script =
        request.resourceType() === 'script' && request.url().includes('/assets/passkeys.js')
      expect(navigation || stylesheet || script, `${request.resourceType()} ${request.url()}`).toBe(
        true,
      )
    }
  }

  async function newPage(): Promise<{ page: Page; requests: Request[] }> {
    const { page, context } = await chromium.newPage()
    const requests: Request[] = []
    context.on('request', (r) => requests.push(r))
    return { page, requests }
  }

  async function signIn(page: Page, email: string) {
    await page.getByLabel('Email address').fill(email)
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  }

  it(
    'register, sign in, the account page, change the display name, sign out',
    async () => {
      const { page, requests } = await newPage()
      const email = uniqueEmail('chromium')
      await page.goto(`${tessera}/register`)
      await page.getByLabel('Email address').fill(email)
      await page.getByLabel('Display name (optional)').fill('Ada')
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Create account' }).click()
      await page.waitForURL(`${tessera}/account`)
      await expect
        .poll(() => page.getByRole('heading', { level: 1 }).textContent())
        .toBe('Your account')
      expect(await page.getByText('Signed in as Ada').count()).toBe(1)

      await page.getByLabel('Display name').fill('Ada Lovelace')
      await page.getByRole('button', { name: 'Save display name' }).click()
      await page.waitForURL(`${tessera}/account?done=profile_saved`)
      expect(await page.getByRole('status').first().textContent()).toContain(
        'Your display name is saved.',
      )
      expect(await page.getByText('Signed in as Ada Lovelace').count()).toBe(1)

      await page.getByRole('button', { name: 'Sign out', exact: true }).click()
      await page.waitForURL(`${tessera}/login?done=signed_out`)
      expect(await page.getByRole('status').textContent()).toContain('You are signed out.')
      // Focus order: the skip link, the site's name, then the form.
      await page.keyboard.press('Tab')
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content')
      await page.keyboard.press('Tab')
      await page.keyboard.press('Tab')
      expect(await page.evaluate('document.activeElement?.id')).toBe('email')

      await signIn(page, email)
      await page.waitForURL(`${tessera}/account`)
      expect(await page.getByLabel('Display name').inputValue()).toBe('Ada Lovelace')
      // Nothing came from anywhere but Tessera, and the stylesheet applied.
      expect(requests.every((r) => r.url().startsWith(tessera))).toBe(true)
      expect(await page.evaluate('getComputedStyle(document.body).margin')).toBe('0px')
    },
    TIMEOUT,
  )

  it(
    'signs in with the CILogon stand-in from the sign-in page',
    async () => {
      federation.idp.current = { sub: uniqueSubject('chromium'), email: uniqueEmail('cilogon') }
      const { page } = await newPage()
      await page.goto(`${tessera}/login`)
      await page.getByRole('button', { name: 'Sign in with CILogon' }).click()
      await page.waitForURL(`${tessera}/account`)
      const facts = await page.locator('dl.facts').textContent()
      expect(facts).toContain('Account typeAcademic')
      expect(facts).toContain('VerifiedYes')
    },
    TIMEOUT,
  )

  it(
    'a password account verifies with CILogon, starting from a front-end on another site',
    async () => {
      const { email } = await register(app, uniqueEmail('verify'))
      const { page, requests } = await newPage()
      await page.goto(frontEnd.url)
      await page.getByRole('link', { name: 'Verify your academic status' }).click()
      await page.waitForURL(`${tessera}/login?return_to=%2Faccount`)
      await signIn(page, email)
      await page.waitForURL(`${tessera}/account`)
      federation.idp.current = { sub: uniqueSubject('verify'), email: uniqueEmail('campus') }
      await page.getByRole('button', { name: 'Verify academic status with CILogon' }).click()
      await page.waitForURL(`${tessera}/account?linked=cilogon`)
      expect(await page.getByRole('status').first().textContent()).toContain(
        'CILogon is linked: your account is verified as academic.',
      )
      expectFirstPartyOnly(requests)
      const { access_token } = await login(app, email)
      const me = await app.request('/v1/user/me', { token: access_token })
      expect(await me.json()).toMatchObject({
        account_type: 'academic',
        verified: true,
        identities: [{ provider: 'cilogon' }],
      })
    },
    TIMEOUT,
  )

  it(
    'a front-end on another origin signs a user in through /login?return_to=, then calls the API',
    async () => {
      const { email } = await register(app, uniqueEmail('front-end'))
      const { page, requests } = await newPage()
      await page.goto(frontEnd.url)
      await page.getByRole('button', { name: 'Sign in with Tessera' }).click()
      await page.waitForURL((url) => url.href.startsWith(`${tessera}/login?`))
      expect(await page.getByText(`to continue to localhost:`).textContent()).toContain(
        new URL(frontEnd.url).host,
      )
      await signIn(page, email)
      await page.waitForURL((url) => url.href.startsWith(frontEnd.callback))
      // The front-end exchanges the code and reads the account itself, under CORS.
      const result = page.locator('#result')
      await expect.poll(() => result.textContent()).toBe(`signed in as ${email}`)
      const code = await result.getAttribute('data-code')
      // The code is spent: exchanging it again (even with its verifier) is refused.
      const verifier = await result.getAttribute('data-verifier')
      await expectProblem(
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code, code_verifier: verifier },
        }),
        401,
        'invalid_login_code',
      )
      const apiCalls = requests.filter((r) => r.url().startsWith(`${tessera}/v1/`))
      expect(apiCalls.map((r) => new URL(r.url()).pathname)).toEqual([
        '/v1/user/auth/oauth/exchange',
        '/v1/user/me',
      ])
      // Everything else was a navigation (or the stylesheet): no cookie of Tessera's is needed
      // by the API calls, which carry the bearer token.
      expectFirstPartyOnly(requests.filter((r) => !r.url().startsWith(`${tessera}/v1/`)))
    },
    TIMEOUT,
  )

  it(
    'revoking a session on the account page ends it: its refresh token fails',
    async () => {
      const { email } = await register(app, uniqueEmail('revoke'))
      const cli = await tokenPairOf(
        await app.request('/v1/user/auth/login', {
          json: { email, password: PASSWORD },
          headers: { 'user-agent': 'TesseraCLI/1.0' },
        }),
      )
      const { page } = await newPage()
      await page.goto(`${tessera}/login`)
      await signIn(page, email)
      await page.waitForURL(`${tessera}/account`)
      const sessions = page.locator('#sessions + p + ul > li')
      expect(await sessions.count()).toBe(2)
      expect(await sessions.filter({ hasText: 'this browser' }).textContent()).toContain('Chrome')
      await sessions
        .filter({ hasText: 'TesseraCLI/1.0' })
        .getByRole('button', { name: 'Sign out' })
        .click()
      await page.waitForURL(`${tessera}/account?done=session_revoked#sessions`)
      expect(await sessions.count()).toBe(1)
      await expectProblem(await refresh(app, cli.refresh_token), 401, 'invalid_refresh_token')
    },
    TIMEOUT,
  )

  it(
    'logout-all through the API ends the browser session',
    async () => {
      const { email } = await register(app, uniqueEmail('logout-all'))
      const { page } = await newPage()
      await page.goto(`${tessera}/account`)
      await page.waitForURL(`${tessera}/login?return_to=%2Faccount`)
      await signIn(page, email)
      await page.waitForURL(`${tessera}/account`)
      const { access_token } = await login(app, email)
      const res = await app.request('/v1/user/auth/logout-all', {
        method: 'POST',
        token: access_token,
      })
      expect(res.status).toBe(204)
      await page.reload()
      await page.waitForURL(`${tessera}/login?return_to=%2Faccount`)
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in')
    },
    TIMEOUT,
  )

  it(
    'forged posts are refused: from another site, and on the page with a wrong token',
    async () => {
      const { email, user } = await register(app, uniqueEmail('csrf'))
      const { page } = await newPage()
      await page.goto(`${tessera}/login`)
      await signIn(page, email)
      await page.waitForURL(`${tessera}/account`)
      // The attacker's page auto-submits a form to Tessera.
      const forged = page.waitForResponse(`${tessera}/account/profile`)
      await page.goto(`${frontEnd.url}/forge`)
      expect((await forged).status()).toBe(403)
      await page.waitForURL(`${tessera}/account/profile`)
      expect(await page.locator('code').textContent()).toBe('csrf_failed')
      // A same-origin post whose token is wrong.
      await page.goto(`${tessera}/account`)
      await page.locator('form[action="/account/profile"] input[name="csrf"]').evaluate((input) => {
        ;(input as unknown as { value: string }).value = 'wrong-token'
      })
      await page.getByLabel('Display name').fill('Mallory')
      const refused = page.waitForResponse(`${tessera}/account/profile`)
      await page.getByRole('button', { name: 'Save display name' }).click()
      expect((await refused).status()).toBe(403)
      expect(await page.locator('code').textContent()).toBe('csrf_failed')
      const row = await app.server.tessera.db
        .selectFrom('users')
        .select('display_name')
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(row.display_name).toBeNull()
    },
    TIMEOUT,
  )

  it(
    'an open return_to is refused and never followed',
    async () => {
      const { page, requests } = await newPage()
      for (const returnTo of ['https://evil.example/', '//evil.example', '/\\evil.example']) {
        const res = await page.goto(`${tessera}/login?return_to=${encodeURIComponent(returnTo)}`)
        expect(res?.status(), returnTo).toBe(400)
        expect(await page.locator('code').textContent()).toBe('invalid_return_to')
        expect(page.url().startsWith(tessera)).toBe(true)
      }
      expect(requests.some((r) => r.url().includes('evil.example/'))).toBe(false)
      expect(requests.every((r) => r.url().startsWith(tessera))).toBe(true)
    },
    TIMEOUT,
  )
})
