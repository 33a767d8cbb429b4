import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { chromiumMissing, type TestBrowser } from '../support/browser.js'
import { runTesseraInProcess } from '../support/cli.js'
import { type CliBrowserStage, startCliBrowserStage } from '../support/cli-browser-stage.js'
import type { FakeOidcProvider } from '../support/oidc.js'
import { startCli } from '../support/process.js'
import { uniqueEmail, uniqueSubject } from '../support/users.js'

const OPENS =
  /it opens (\S+\/device\?user_code=[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})/

const missing = chromiumMissing()

describe.skipIf(missing !== undefined)(
  'the device verification page in Chromium [sqlite]',
  { timeout: 90_000 },
  () => {
    let stage: CliBrowserStage
    let app: TestApp
    let idp: FakeOidcProvider
    let browser: TestBrowser
    let root: string
    let count = 0

    beforeAll(async () => {
      stage = await startCliBrowserStage('device-page')
      ;({ app, idp, browser, root } = stage)
    })
    afterAll(() => stage?.close())

    /** A device login in a child process, with no display, and the link it prints. */
    async function deviceLogin() {
      count += 1
      const env = { TESSERA_URL: app.url, XDG_CONFIG_HOME: join(root, `config-${count}`) }
      const cli = startCli(['user', 'login', '--device'], { env })
      const [, link] = await cli.waitFor(OPENS)
      return { cli, env, link: link! }
    }

    /** Opens the link signed out, signs in with CILogon and arrives at the code form. */
    async function signInWithCilogon(page: Page, link: string, email: string) {
      idp.current = { sub: uniqueSubject('cilogon-device'), email, email_verified: true }
      await page.goto(link)
      expect(new URL(page.url()).pathname).toBe('/login')
      await page.getByRole('button', { name: 'Sign in with CILogon' }).click()
      await page.getByRole('heading', { name: 'Log in a device' }).waitFor()
      expect(page.url()).toBe(link)
      await page.getByRole('button', { name: 'Continue' }).click()
      await page.getByRole('heading', { name: 'Approve this device?' }).waitFor()
    }

    it('a CILogon-only account approves; the CLI holds an academic, verified account', async () => {
      const { cli, env, link } = await deviceLogin()
      const email = uniqueEmail('cilogon-device')
      const { page } = await browser.newPage()
      await signInWithCilogon(page, link, email)
      const facts = await page.locator('dl.facts').textContent()
      expect(facts).toContain('tessera-cli')
      expect(facts).toContain('127.0.0.1')
      await page.getByRole('button', { name: 'Approve' }).click()
      await page.getByText('The device is logged in to your account.').waitFor()

      expect(await cli.exited, cli.stderr()).toBe(0)
      expect(cli.stdout()).toBe(`Logged in to ${app.url} as ${email}\n`)
      const whoami = await runTesseraInProcess(['user', 'whoami'], { env })
      expect(whoami.code, whoami.stderr).toBe(0)
      expect(whoami.stdout).toContain(email)
      expect(whoami.stdout).toMatch(/account_type:\s+academic/)
      expect(whoami.stdout).toMatch(/verified:\s+yes/)
      // The account exists only through CILogon.
      const user = await app.server.tessera.db
        .selectFrom('users')
        .select('password_hash')
        .where('email', '=', email)
        .executeTakeFirstOrThrow()
      expect(user.password_hash).toBeNull()
    })

    it('denying on the page ends the CLI with "denied"', async () => {
      const { cli, link } = await deviceLogin()
      const { page } = await browser.newPage()
      await signInWithCilogon(page, link, uniqueEmail('cilogon-deny'))
      await page.getByRole('button', { name: 'Deny' }).click()
      await page.getByText('The device login is denied').waitFor()
      expect(await cli.exited).toBe(1)
      expect(cli.stderr()).toContain('the login was denied')
    })

    it('a wrong code shows the uniform message and leaves the login waiting', async () => {
      const { cli, link } = await deviceLogin()
      const { page } = await browser.newPage()
      idp.current = {
        sub: uniqueSubject('cilogon-wrong'),
        email: uniqueEmail('cilogon-wrong'),
        email_verified: true,
      }
      await page.goto(`${app.url}/device`)
      await page.getByRole('button', { name: 'Sign in with CILogon' }).click()
      await page.getByLabel('Code').fill('BCDF-GHJK')
      await page.getByRole('button', { name: 'Continue' }).click()
      await expect
        .poll(() => page.getByRole('alert').textContent())
        .toContain('This code is unknown, expired or already used.')
      // The real code still works afterwards.
      await page.getByLabel('Code').fill(new URL(link).searchParams.get('user_code')!)
      await page.getByRole('button', { name: 'Continue' }).click()
      await page.getByRole('heading', { name: 'Approve this device?' }).waitFor()
      cli.kill('SIGINT')
      expect(await cli.exited).toBe(130)
    })
  },
)
