/**
 * The pages' MFA step (README, "Second factors") in a real Chromium: a password sign-in of an
 * account with TOTP shows the code page, whose code opens the browser session; a recovery code
 * works there too, and a wrong code shows the page again.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, launchBrowser, type TestBrowser } from '../support/browser.js'
import { enrolTotp, totpCode } from '../support/mfa.js'
import { PASSWORD, registerAndLogin } from '../support/users.js'

const skip = chromiumMissing()
const TIMEOUT = 60_000

describe.skipIf(skip !== undefined)('the pages’ MFA step in Chromium [sqlite]', () => {
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

  async function enrolledUser() {
    const registered = await registerAndLogin(app)
    const enrolled = await enrolTotp(app, registered.tokens.access_token)
    app.clock.advance(60_000)
    return { ...registered, ...enrolled }
  }

  async function passwordStep(page: Page, email: string) {
    await page.goto(`${app.url}/login`)
    await page.getByLabel('Email address').fill(email)
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await page.waitForURL(`${app.url}/login`)
    expect(await page.title()).toContain('Second factor')
  }

  it(
    'a TOTP code after the password signs in; the session has amr pwd otp mfa',
    async () => {
      const user = await enrolledUser()
      const { page, context } = await chromium.newPage()
      await passwordStep(page, user.email)
      const field = page.getByLabel('Code from your authenticator app')
      expect(await field.getAttribute('autocomplete')).toBe('one-time-code')
      expect(await field.getAttribute('inputmode')).toBe('numeric')
      // A wrong code: the step again, with a message.
      const right = totpCode(app, user.secret)
      await field.fill(right === '123456' ? '654321' : '123456')
      await page.getByRole('button', { name: 'Verify' }).click()
      await page.waitForURL(`${app.url}/login/mfa`)
      expect(await page.getByRole('alert').textContent()).toContain('Invalid second-factor code')
      await page.getByLabel('Code from your authenticator app').fill(right)
      await page.getByRole('button', { name: 'Verify' }).click()
      await page.waitForURL(`${app.url}/account`)
      const cookie = (await context.cookies()).find((c) => c.name === 'tessera_session')
      expect(cookie).toBeDefined()
      const rows = await app.server.tessera.db
        .selectFrom('sessions')
        .select('amr')
        .where('user_id', '=', user.user.id)
        .where('kind', '=', 'browser')
        .execute()
      expect(rows.map((r) => r.amr)).toEqual(['pwd otp mfa'])
    },
    TIMEOUT,
  )

  it(
    'a recovery code signs in from the same step',
    async () => {
      const user = await enrolledUser()
      const { page } = await chromium.newPage()
      await passwordStep(page, user.email)
      await page.getByText('Use a recovery code').click()
      await page.getByLabel('Recovery code').fill(user.recoveryCodes[0]!)
      await page.getByRole('button', { name: 'Use recovery code' }).click()
      await page.waitForURL(`${app.url}/account`)
    },
    TIMEOUT,
  )
})
