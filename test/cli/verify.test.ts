import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { chromiumMissing, type TestBrowser } from '../support/browser.js'
import { runTesseraInProcess } from '../support/cli.js'
import { type CliBrowserStage, startCliBrowserStage } from '../support/cli-browser-stage.js'
import type { FakeOidcProvider } from '../support/oidc.js'
import { startCli } from '../support/process.js'
import { PASSWORD, register, uniqueEmail, uniqueSubject } from '../support/users.js'

const missing = chromiumMissing()

describe.skipIf(missing !== undefined)('tessera user verify [sqlite]', { timeout: 90_000 }, () => {
  let stage: CliBrowserStage
  let app: TestApp
  let idp: FakeOidcProvider
  let browser: TestBrowser
  let root: string
  let count = 0

  beforeAll(async () => {
    stage = await startCliBrowserStage('verify-cli', {
      RATE_LIMIT_REGISTER_PER_IP: '0',
      RATE_LIMIT_LOGIN_PER_IP: '0',
    })
    ;({ app, idp, browser, root } = stage)
  })
  afterAll(() => stage?.close())

  /** A logged-in password account, a $BROWSER that hands its URL to the test, and the env. */
  async function loggedIn() {
    count += 1
    const { email } = await register(app, uniqueEmail('verify-cli'))
    const script = stage.browserScript()
    const env = {
      TESSERA_URL: app.url,
      XDG_CONFIG_HOME: join(root, `config-${count}`),
      BROWSER: script.path,
    }
    const login = await runTesseraInProcess(['user', 'login', '--password', '--email', email], {
      env,
      input: `${PASSWORD}\n`,
    })
    expect(login.code, login.stderr).toBe(0)
    return { email, env, opened: script.url }
  }

  /** Follows the link URL in Chromium through the CILogon stand-in. */
  async function followLink(url: string) {
    idp.current = {
      sub: uniqueSubject('verify'),
      email: uniqueEmail('campus'),
      email_verified: true,
    }
    const { page } = await browser.newPage()
    await page.goto(url)
    await page.getByText('Your account is now verified.').waitFor()
  }

  it('a password account opens the link, signs in at CILogon and is verified', async () => {
    const { email, env, opened } = await loggedIn()
    const running = runTesseraInProcess(['user', 'verify'], { env })
    const url = await opened()
    expect(url).toMatch(new RegExp(`^${app.url}/link/[A-Za-z0-9_-]+$`))
    await followLink(url)
    const verify = await running
    expect(verify.code, verify.stderr).toBe(0)
    expect(verify.stdout).toBe(`Verified: ${email} is an academic account\n`)
    expect(verify.stderr).toContain('Your browser is open at CILogon')
    const whoami = await runTesseraInProcess(['user', 'whoami'], { env })
    expect(whoami.stdout).toMatch(/account_type:\s+academic/)
    expect(whoami.stdout).toMatch(/verified:\s+yes/)
    // Nothing left to do the second time.
    const again = await runTesseraInProcess(['user', 'verify'], { env })
    expect(again.stdout).toBe(`${email} is already verified as academic\n`)
  })

  it('a login older than REAUTH_MAX_AGE asks for the password, then goes on', async () => {
    const { email, env, opened } = await loggedIn()
    app.clock.advance(301_000)
    try {
      const wrong = await runTesseraInProcess(['user', 'verify'], { env, input: 'not it!\n' })
      expect(wrong.code).toBe(1)
      expect(wrong.stderr).toContain('the password is wrong')
      const none = await runTesseraInProcess(['user', 'verify'], { env, input: '\n' })
      expect(none.code).toBe(1)
      expect(none.stderr).toContain('log in again (tessera user login)')
      const running = runTesseraInProcess(['user', 'verify'], { env, input: `${PASSWORD}\n` })
      await followLink(await opened())
      const verify = await running
      expect(verify.code, verify.stderr).toBe(0)
      expect(verify.stdout).toBe(`Verified: ${email} is an academic account\n`)
    } finally {
      app.clock.advance(-301_000)
    }
  })

  it('without a browser it prints the link and a QR code; Ctrl-C exits 130', async () => {
    const { env } = await loggedIn()
    const cli = startCli(['user', 'verify'], { env: { ...env, BROWSER: join(root, 'none') } })
    const [, url] = await cli.waitFor(/within 5 minutes\): (\S+)/)
    expect(url).toMatch(new RegExp(`^${app.url}/link/`))
    await cli.waitFor(/Waiting for the verification/)
    expect(cli.stderr()).toMatch(/[▀▄█]{10,}/)
    cli.kill('SIGINT')
    expect(await cli.exited).toBe(130)
    expect(cli.stderr()).toMatch(/verification cancelled\n$/)
  })
})
