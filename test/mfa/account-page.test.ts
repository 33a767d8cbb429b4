/**
 * Two-step verification on the account page (README, "Second factors", "Pages"): in a real
 * Chromium, TOTP set up from the QR page with a code computed from the secret the page shows, the
 * recovery codes shown once, the MFA step at the next sign-in, new recovery codes, turning it off;
 * a wrong confirmation code enrols nothing. Without a browser: the forms' CSRF and
 * recent-authentication refusals, on both dialects.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, launchBrowser, type TestBrowser } from '../support/browser.js'
import { dialects } from '../support/dialects.js'
import { totpCode } from '../support/mfa.js'
import { TESSERA_TEST_ISSUER } from '../support/oidc.js'
import { formToken, locationOf, PageBrowser } from '../support/pages.js'
import { PASSWORD, register, uniqueEmail } from '../support/users.js'

const skip = chromiumMissing()
const TIMEOUT = 60_000

describe.skipIf(skip !== undefined)('two-step verification on the account page [sqlite]', () => {
  let chromium: TestBrowser
  let app: TestApp

  beforeAll(async () => {
    // The pages redirect to TESSERA_ISSUER: the app's own address here.
    app = await makeTestApp({ issuerHost: '127.0.0.1' })
    chromium = await launchBrowser()
  }, TIMEOUT)
  afterAll(async () => {
    await chromium?.close()
    await app?.close()
  })

  async function signIn(page: Page, email: string) {
    await page.goto(`${app.url}/login`)
    await page.getByLabel('Email address').fill(email)
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  }

  const totpRow = (userId: string) =>
    app.server.tessera.db
      .selectFrom('totp_credentials')
      .select('confirmed_at')
      .where('user_id', '=', userId)
      .executeTakeFirst()

  /** The setup page: its QR code is inline SVG, it has no script; the secret it shows. */
  async function setUp(page: Page): Promise<string> {
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click()
    await page.waitForURL(`${app.url}/account/mfa/totp`)
    expect(await page.title()).toContain('Set up an authenticator app')
    expect(await page.locator('[data-totp-qr] svg path').count()).toBeGreaterThan(0)
    expect(await page.locator('script').count()).toBe(0)
    const field = page.getByLabel('Code from your authenticator app')
    expect(await field.getAttribute('autocomplete')).toBe('one-time-code')
    expect(await field.getAttribute('inputmode')).toBe('numeric')
    const shown = (await page.locator('[data-totp-secret]').textContent()) ?? ''
    expect(shown).toMatch(/^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/)
    return shown.replaceAll(' ', '')
  }

  it(
    'set up, recovery codes once, sign in with the code, new codes, turn off',
    async () => {
      const email = uniqueEmail('mfa-page')
      const userId = (await register(app, email)).user.id
      const { page } = await chromium.newPage()
      await signIn(page, email)
      await page.waitForURL(`${app.url}/account`)
      expect(await page.locator('[data-mfa-state]').getAttribute('data-mfa-state')).toBe('off')

      // A wrong code: the form again with the reason, nothing enrolled.
      const secret = await setUp(page)
      const right = totpCode(app, secret)
      await page
        .getByLabel('Code from your authenticator app')
        .fill(right === '123456' ? '654321' : '123456')
      await page.getByRole('button', { name: 'Turn on two-step verification' }).click()
      await page.waitForURL(`${app.url}/account/mfa/totp/confirm`)
      expect(await page.getByRole('alert').textContent()).toContain('Invalid second-factor code')
      expect((await totpRow(userId))?.confirmed_at).toBeNull()

      // The right one: the ten recovery codes, this once.
      await page.getByLabel('Code from your authenticator app').fill(right)
      await page.getByRole('button', { name: 'Turn on two-step verification' }).click()
      await page.waitForURL(`${app.url}/account/mfa/totp/confirm`)
      const codes = await page.locator('[data-recovery-codes] code').allTextContents()
      expect(codes).toHaveLength(10)
      expect(new Set(codes).size).toBe(10)
      expect(await page.locator('script').count()).toBe(0)
      expect((await totpRow(userId))?.confirmed_at).not.toBeNull()
      await page.getByRole('link', { name: /back to your account/ }).click()
      await page.waitForURL(`${app.url}/account#mfa`)
      const state = page.locator('[data-mfa-state]')
      expect(await state.getAttribute('data-mfa-state')).toBe('on')
      expect(await state.textContent()).toContain('Recovery codes left: 10')
      // The account page does not show them again.
      expect(await page.content()).not.toContain(codes[0]!)

      // Sign out; the next sign-in asks for a code (a later step: the first one is spent).
      await page.getByRole('button', { name: 'Sign out', exact: true }).click()
      await page.waitForURL(/\/login/)
      app.clock.advance(30_000)
      await signIn(page, email)
      await page.waitForURL(`${app.url}/login`)
      expect(await page.title()).toContain('Second factor')
      await page.getByLabel('Code from your authenticator app').fill(totpCode(app, secret))
      await page.getByRole('button', { name: 'Verify' }).click()
      await page.waitForURL(`${app.url}/account`)

      // New recovery codes replace the old ones.
      await page.getByRole('button', { name: 'New recovery codes' }).click()
      await page.waitForURL(`${app.url}/account/mfa/recovery-codes`)
      const fresh = await page.locator('[data-recovery-codes] code').allTextContents()
      expect(fresh).toHaveLength(10)
      expect(fresh).not.toContain(codes[0]!)
      await page.goto(`${app.url}/account`)

      // Off, with a current code.
      app.clock.advance(30_000)
      await page.getByLabel('Current code from your app').fill(totpCode(app, secret))
      await page.getByRole('button', { name: 'Turn off two-step verification' }).click()
      await page.waitForURL(`${app.url}/account?done=totp_removed#mfa`)
      expect(await page.locator('[data-mfa-state]').getAttribute('data-mfa-state')).toBe('off')
      expect(await totpRow(userId)).toBeUndefined()
    },
    TIMEOUT,
  )
})

for (const dialect of dialects()) {
  describe(`the two-step verification forms [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { TESSERA_ISSUER: TESSERA_TEST_ISSUER } })
    })
    afterAll(() => app?.close())

    async function signedIn() {
      const email = uniqueEmail('mfa-form')
      await register(app, email)
      const browser = new PageBrowser(app)
      expect((await browser.signIn(email, PASSWORD)).status).toBe(303)
      const csrf = formToken(await (await browser.get('/account')).text())
      return { browser, csrf }
    }

    it('refuses a wrong form token and another origin, enrolling nothing', async () => {
      const { browser, csrf } = await signedIn()
      const forged = await browser.post('/account/mfa/totp', { csrf: 'x'.repeat(40) })
      expect(forged.status).toBe(403)
      expect(await forged.text()).not.toContain('data-totp-secret')
      const crossSite = await browser.post(
        '/account/mfa/totp',
        { csrf },
        {
          origin: 'http://evil.example',
        },
      )
      expect(crossSite.status).toBe(403)
      const none = await browser.post('/account/mfa/totp/confirm', { code: '123456' })
      expect(none.status).toBe(403)
    })

    it('asks for the password when the sign-in is not recent', async () => {
      const { browser, csrf } = await signedIn()
      app.clock.advance(app.server.tessera.config.reauthMaxAge * 1000 + 1000)
      const page = await (await browser.get('/account')).text()
      expect(page).toContain('id="mfa_password"')
      const stale = await browser.post('/account/mfa/totp', { csrf })
      expect(stale.status).toBe(401)
      const html = await stale.text()
      expect(html).not.toContain('data-totp-secret')
      expect(html).toContain('id="mfa"')
      const wrong = await browser.post('/account/mfa/totp', { csrf, password: 'not-the-password' })
      expect(wrong.status).toBe(401)
      const started = await browser.post('/account/mfa/totp', { csrf, password: PASSWORD })
      expect(started.status).toBe(200)
      expect(await started.text()).toContain('data-totp-secret')
    })

    it('turning off needs a code or a recent sign-in; without either, no change', async () => {
      const { browser, csrf } = await signedIn()
      const started = await (await browser.post('/account/mfa/totp', { csrf })).text()
      const secret = /data-totp-secret="">([A-Z2-7 ]+)</.exec(started)![1]!.replaceAll(' ', '')
      const confirm = await browser.post('/account/mfa/totp/confirm', {
        csrf,
        code: totpCode(app, secret),
      })
      expect(confirm.status).toBe(200)
      app.clock.advance(app.server.tessera.config.reauthMaxAge * 1000 + 1000)
      const stale = await browser.post('/account/mfa/totp/remove', { csrf, code: '' })
      expect(stale.status).toBe(401)
      const codes = await browser.post('/account/mfa/recovery-codes', { csrf })
      expect(codes.status).toBe(401)
      const removed = await browser.post('/account/mfa/totp/remove', {
        csrf,
        code: totpCode(app, secret),
      })
      expect(locationOf(removed)).toBe('/account?done=totp_removed#mfa')
    })
  })
}
