import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { chromiumMissing, type TestBrowser } from '../support/browser.js'
import { runTesseraInProcess } from '../support/cli.js'
import { type CliBrowserStage, startCliBrowserStage } from '../support/cli-browser-stage.js'
import type { FakeOidcProvider } from '../support/oidc.js'
import { startCli } from '../support/process.js'
import { uniqueEmail, uniqueSubject } from '../support/users.js'

const missing = chromiumMissing()

describe.skipIf(missing !== undefined)(
  'tessera user login --browser [sqlite]',
  {
    timeout: 90_000,
  },
  () => {
    let stage: CliBrowserStage
    let app: TestApp
    let idp: FakeOidcProvider
    let browser: TestBrowser
    let root: string
    let browserScript: CliBrowserStage['browserScript']

    beforeAll(async () => {
      stage = await startCliBrowserStage('browser-cli')
      ;({ app, idp, browser, root, browserScript } = stage)
    })
    afterAll(() => stage?.close())

    it('the CLI gets the code on its loopback port and holds the CILogon account', async () => {
      const email = uniqueEmail('cilogon-cli')
      idp.current = { sub: uniqueSubject('cilogon'), email, email_verified: true }
      const opener = browserScript()
      const env = {
        TESSERA_URL: app.url,
        XDG_CONFIG_HOME: join(root, 'config'),
        BROWSER: opener.path,
      }
      const cli = startCli(['user', 'login', '--browser', '--provider', 'cilogon'], { env })
      const start = new URL(await opener.url())
      expect(`${start.origin}${start.pathname}`).toBe(
        `${app.url}/v1/user/authenticate/cilogon/authorize`,
      )
      const redirectUri = new URL(start.searchParams.get('redirect_uri')!)
      expect(redirectUri.hostname).toBe('127.0.0.1')
      expect(redirectUri.pathname).toBe('/tessera/callback')
      expect(start.searchParams.get('code_challenge_method')).toBe('S256')
      expect(start.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{22}$/)

      const { page } = await browser.newPage()
      await page.goto(start.toString())
      await page.getByText('You can close this window').waitFor()
      // The browser ended on the CLI's listener, which took the code out of the address bar's use.
      expect(page.url().startsWith(`${redirectUri.origin}/tessera/callback?`)).toBe(true)

      expect(await cli.exited, cli.stderr()).toBe(0)
      expect(cli.stdout()).toBe(`Logged in to ${app.url} as ${email}\n`)
      // The code was bound to the CLI's challenge, and redeemed with its verifier.
      const code = await app.server.tessera.db
        .selectFrom('login_codes')
        .select(['code_challenge', 'used_at'])
        .executeTakeFirstOrThrow()
      expect(code.code_challenge).toBe(start.searchParams.get('code_challenge'))
      expect(code.used_at).not.toBeNull()

      const whoami = await runTesseraInProcess(['user', 'whoami'], { env })
      expect(whoami.code, whoami.stderr).toBe(0)
      expect(whoami.stdout).toContain(email)
      expect(whoami.stdout).toMatch(/account_type:\s+academic/)
      expect(whoami.stdout).toMatch(/verified:\s+yes/)
      expect(whoami.stdout).toMatch(/identities:\s+cilogon/)
    })

    it('the listener ignores answers without its state; Ctrl-C ends it', async () => {
      const opener = browserScript()
      const env = {
        TESSERA_URL: app.url,
        XDG_CONFIG_HOME: join(root, 'other'),
        BROWSER: opener.path,
      }
      const cli = startCli(['user', 'login', '--browser', '--provider', 'cilogon'], { env })
      const start = new URL(await opener.url())
      const callback = start.searchParams.get('redirect_uri')!
      const forged = await fetch(`${callback}?code=tessera_lc_forged&state=guessed`).catch((e) => {
        throw new Error(cli.stderr() + String(e))
      })
      expect(forged.status).toBe(400)
      expect(await forged.text()).toContain('not for the sign-in the command started')
      expect((await fetch(new URL('/other', callback))).status).toBe(404)
      cli.kill('SIGINT')
      expect(await cli.exited).toBe(130)
      expect(cli.stderr()).toMatch(/login cancelled\n$/)
      // The listener is gone with it.
      await expect(fetch(callback)).rejects.toThrow()
    })
  },
)
