/**
 * The whole recovery in a real Chromium, on both databases (README, "Password reset"): the
 * sign-in page links to the forgot page, its form queues the mail, the mail arrives at the real
 * SMTP server, and its link opens the reset page, which moves the token out of its URL before
 * the new password is chosen. The new password signs in; the sessions from before are dead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, launchBrowser, type TestBrowser } from '../support/browser.js'
import { dialects } from '../support/dialects.js'
import { resetLinkOf } from '../support/mail.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  registerAndLogin,
  uniqueEmail,
} from '../support/users.js'

const skip = chromiumMissing()
const TIMEOUT = 60_000
const NEW_PASSWORD = 'quiet-orchard-under-snow-81'

for (const dialect of dialects()) {
  describe.skipIf(skip !== undefined)(`the reset pages in Chromium [${dialect}]`, () => {
    let chromium: TestBrowser
    let smtp: TestSmtpServer
    let app: TestApp
    let tessera: string

    beforeAll(async () => {
      smtp = await startSmtpServer()
      app = await makeTestApp({
        dialect,
        issuerHost: '127.0.0.1',
        env: { SMTP_URL: smtp.url },
        mailPollMs: 50,
      })
      tessera = app.issuer
      chromium = await launchBrowser()
    }, TIMEOUT)
    afterAll(async () => {
      await chromium?.close()
      await app?.close()
      await smtp?.stop()
    })

    it(
      'forgot → mail → reset page → the new password signs in, old sessions are dead',
      async () => {
        const { email, tokens } = await registerAndLogin(app, uniqueEmail('chromium-reset'))
        // Registration mails a verification first (README, "Email verification and change").
        await smtp.waitForMail(email)
        const { page, requests } = await chromium.newPage()

        // A browser session from before the reset, signed in with the old password.
        const other = await chromium.newPage()
        await other.page.goto(`${tessera}/login`)
        await other.page.getByLabel('Email address').fill(email)
        await other.page.getByLabel('Password').fill(PASSWORD)
        await other.page.getByRole('button', { name: 'Sign in', exact: true }).click()
        await other.page.waitForURL(`${tessera}/account`)

        await page.goto(`${tessera}/login`)
        await page.getByRole('link', { name: 'Forgot your password?' }).click()
        await page.waitForURL(`${tessera}/forgot-password`)
        await page.getByLabel('Email address').fill(email)
        await page.getByRole('button', { name: 'Send the link' }).click()
        await page.waitForURL(`${tessera}/forgot-password?done=reset_mail_sent`)
        expect(await page.getByRole('status').textContent()).toContain('on its way')

        const link = resetLinkOf(await smtp.waitForMail(email))
        expect(link.startsWith(`${tessera}/reset-password?token=tessera_pr_`)).toBe(true)
        await page.goto(link)
        // The token left the address bar (and the history entry) at once.
        await page.waitForURL(`${tessera}/reset-password`)
        expect(page.url()).toBe(`${tessera}/reset-password`)
        await page.getByLabel('New password').fill(NEW_PASSWORD)
        await page.getByRole('button', { name: 'Set the password' }).click()
        await page.waitForURL(`${tessera}/login?done=password_reset`)
        expect(await page.getByRole('status').textContent()).toContain('Your password is set.')
        const token = new URL(link).searchParams.get('token')!
        const withToken = requests.filter((r) => r.includes(token))
        expect(withToken).toEqual([link])

        await page.getByLabel('Email address').fill(email)
        await page.getByLabel('Password').fill(NEW_PASSWORD)
        await page.getByRole('button', { name: 'Sign in', exact: true }).click()
        await page.waitForURL(`${tessera}/account`)

        // The browser session and the API session from before are over.
        await other.page.goto(`${tessera}/account`)
        await other.page.waitForURL((url) => url.pathname === '/login')
        await expectProblem(await refresh(app, tokens.refresh_token), 401, 'invalid_refresh_token')
        await login(app, email, NEW_PASSWORD)

        // The link is spent: opening it again shows the refusal and how to get a new one.
        await page.goto(link)
        await page.getByLabel('New password').fill('one-more-password-attempt-9')
        await page.getByRole('button', { name: 'Set the password' }).click()
        expect(await page.getByRole('alert').textContent()).toContain('Request a new link.')
        expect(await page.getByRole('link', { name: 'Request a new link' }).count()).toBe(1)
      },
      TIMEOUT,
    )
  })
}
