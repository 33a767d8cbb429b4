import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Env } from '../../src/config/index.js'
import { makeTestApp, type TestApp } from './app.js'
import { launchBrowser, type TestBrowser } from './browser.js'
import { type FakeOidcProvider, startOidcProvider } from './oidc.js'
import { freePort } from './process.js'

/**
 * What the tests of the command line's browser paths share: Tessera at its real loopback address
 * (Chromium must reach the issuer, so the issuer is that address and the oidc-provider stand-in
 * for CILogon registers Tessera's callbacks there), a Chromium, and a scratch folder for the
 * commands' configuration and `$BROWSER` scripts.
 */
export interface CliBrowserStage {
  app: TestApp
  idp: FakeOidcProvider
  browser: TestBrowser
  root: string
  /** A `$BROWSER` that writes the URL it is given to a file, and how the test reads it. */
  browserScript(): { path: string; url(): Promise<string> }
  close(): Promise<void>
}

export async function startCliBrowserStage(name: string, env: Env = {}): Promise<CliBrowserStage> {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const idp = await startOidcProvider({ tesseraIssuer: issuer })
  const app = await makeTestApp({
    env: {
      PORT: String(port),
      TESSERA_ISSUER: issuer,
      OAUTH_ALLOW_INSECURE_ISSUERS: 'true',
      ...idp.env(),
      ...env,
    },
  })
  const browser = await launchBrowser()
  const root = mkdtempSync(join(tmpdir(), `tessera-${name}-`))
  let scripts = 0
  return {
    app,
    idp,
    browser,
    root,
    browserScript() {
      scripts += 1
      const urls = join(root, `opened-${scripts}.txt`)
      const path = join(root, `open-url-${scripts}`)
      writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$1" > '${urls}'\n`)
      chmodSync(path, 0o755)
      return {
        path,
        async url() {
          for (let i = 0; i < 300 && !existsSync(urls); i++) {
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
          return readFileSync(urls, 'utf8').trim()
        },
      }
    },
    async close() {
      await browser.close()
      await app.close()
      await idp.close()
      rmSync(root, { recursive: true, force: true })
    },
  }
}
