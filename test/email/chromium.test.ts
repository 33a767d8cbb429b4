/**
 * The verification and email-change pages in a real Chromium (README, "Email verification and
 * change"), with the mails read from a real SMTP server: the link's token leaves the address bar
 * on arrival and only the page's button spends it; REQUIRE_VERIFIED_EMAIL's sign-in refusal offers
 * "send again"; the account page's change form, the confirmation and the cancellation links.
 */
import type { ParsedMail } from 'mailparser'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, freePort, launchBrowser, type TestBrowser } from '../support/browser.js'
import { dialects } from '../support/dialects.js'
import { startSmtpServer, type TestSmtpServer } from '../support/smtp.js'
import { PASSWORD, uniqueEmail } from '../support/users.js'

const skip = chromiumMissing()
const TIMEOUT = 60_000

/** The link of a mail (its text part), to one of Tessera's pages. */
function linkIn(mail: ParsedMail, path: string): string {
  const link = new RegExp(`https?://[^\\s]+${path}\\?token=[A-Za-z0-9_-]+`).exec(mail.text ?? '')
  expect(link, mail.text).not.toBeNull()
  return link![0]
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 }).textContent()

for (const dialect of dialects()) {
  describe.skipIf(skip !== undefined)(`email pages in Chromium [${dialect}]`, () => {
    let chromium: TestBrowser
    let smtp: TestSmtpServer
    let app: TestApp
    let strict: TestApp

    beforeAll(async () => {
      smtp = await startSmtpServer()
      const [port, strictPort] = [await freePort(), await freePort()]
      const env = (p: number) => ({
        PORT: String(p),
        TESSERA_ISSUER: `http://127.0.0.1:${p}`,
        SMTP_URL: smtp.url,
      })
      ;[app, strict] = await Promise.all([
        makeTestApp({ dialect, env: env(port) }),
        makeTestApp({ dialect, env: { ...env(strictPort), REQUIRE_VERIFIED_EMAIL: 'true' } }),
      ])
      chromium = await launchBrowser()
    }, TIMEOUT)
    afterAll(async () => {
      await chromium?.close()
      await app?.close()
      await strict?.close()
      await smtp?.stop()
    })

    async function registerIn(page: Page, base: string, email: string) {
      await page.goto(`${base}/register`)
      await page.getByLabel('Email address').fill(email)
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Create account' }).click()
    }

    async function signIn(page: Page, email: string) {
      await page.getByLabel('Email address').fill(email)
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    }

    it(
      'verification by link: the token leaves the URL at once, the button spends it',
      async () => {
        const { page } = await chromium.newPage()
        const email = uniqueEmail('link')
        await registerIn(page, app.url, email)
        await page.waitForURL(`${app.url}/account`)
        expect(await page.locator('#email + p').textContent()).toContain('is not verified yet')

        const link = linkIn(await smtp.waitForMail(email), '/verify-email')
        await page.goto(link)
        // Redirected to the bare page: neither the address bar nor the history keeps the token.
        expect(page.url()).toBe(`${app.url}/verify-email`)
        expect(await heading(page)).toBe('Verify your email address')
        await page.goBack()
        expect(page.url()).not.toContain('token=')
        await page.goForward()
        await page.getByRole('button', { name: 'Verify my email address' }).click()
        await page.waitForURL(`${app.url}/account?done=email_verified#email`)
        expect(await page.locator('#email + p').textContent()).toBe(`${email} is verified.`)

        // The same link again: spent, and the page says so.
        await page.goto(link)
        await page.getByRole('button', { name: 'Verify my email address' }).click()
        expect(await page.getByRole('alert').textContent()).toContain('already used')
      },
      TIMEOUT,
    )

    it(
      'REQUIRE_VERIFIED_EMAIL: check your mail, the refusal offers "send again", then sign in',
      async () => {
        const { page } = await chromium.newPage()
        const email = uniqueEmail('strict')
        await registerIn(page, strict.url, email)
        expect(await heading(page)).toBe('Check your mail')
        await smtp.waitForMail(email)

        await page.goto(`${strict.url}/login`)
        await signIn(page, email)
        expect(await page.getByRole('alert').textContent()).toContain('not verified yet')
        await page.getByRole('button', { name: 'Send the verification mail again' }).click()
        await page.waitForURL(`${strict.url}/login?done=verification_sent`)

        await page.goto(linkIn(await smtp.waitForMail(email), '/verify-email'))
        await page.getByRole('button', { name: 'Verify my email address' }).click()
        await page.waitForURL(`${strict.url}/login?done=email_verified`)
        await signIn(page, email)
        await page.waitForURL(`${strict.url}/account`)
      },
      TIMEOUT,
    )

    it(
      'the account page changes the address; the new one confirms, or the old one cancels',
      async () => {
        const { page } = await chromium.newPage()
        const email = uniqueEmail('changer')
        await registerIn(page, app.url, email)
        await page.waitForURL(`${app.url}/account`)
        await smtp.waitForMail(email)

        const cancelled = uniqueEmail('cancelled')
        await page.getByLabel('New email address').fill(cancelled)
        await page.getByLabel('Your password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Change email address' }).click()
        await page.waitForURL(`${app.url}/account?done=email_change_requested#email`)
        expect(await page.getByText(`A change to ${cancelled} waits`).count()).toBe(1)
        await smtp.waitForMail(cancelled)
        await page.goto(linkIn(await smtp.waitForMail(email), '/email-change'))
        expect(page.url()).toBe(`${app.url}/email-change`)
        await page.getByRole('button', { name: 'Cancel the change' }).click()
        await page.waitForURL(`${app.url}/account?done=email_change_cancelled#email`)

        const next = uniqueEmail('changed')
        await page.getByLabel('New email address').fill(next)
        await page.getByLabel('Your password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Change email address' }).click()
        await page.waitForURL(`${app.url}/account?done=email_change_requested#email`)
        await smtp.waitForMail(email)
        await page.goto(linkIn(await smtp.waitForMail(next), '/email-change'))
        await page.getByRole('button', { name: 'Confirm the new address' }).click()
        await page.waitForURL(`${app.url}/account?done=email_changed#email`)
        expect(await page.locator('#email + p').textContent()).toBe(`${next} is verified.`)

        // A wrong password comes back to the account page with the reason.
        await page.getByLabel('New email address').fill(uniqueEmail())
        await page.getByLabel('Your password').fill(`${PASSWORD}-wrong`)
        await page.getByRole('button', { name: 'Change email address' }).click()
        await page.waitForURL(`${app.url}/account?error=invalid_credentials#email`)
      },
      TIMEOUT,
    )
  })
}
