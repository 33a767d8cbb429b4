/**
 * Loopback redirect URIs (RFC 8252 §7.3; README, "Federated login"): an allow-list entry on a
 * loopback IP literal without a port matches that URI on any port, and nothing else about it is
 * loosened. The CLI's `http://127.0.0.1/tessera/callback` is always allowed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { redirectUriAllowed } from '../../src/federation/flow.js'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  authorizeUrl,
  Browser,
  CLIENT_REDIRECT_URI,
  clientPkce,
  TESSERA_TEST_ISSUER,
} from '../support/oidc.js'
import { expectProblem, tokenPairOf, uniqueEmail, uniqueSubject } from '../support/users.js'

const CONFIGURED = [
  CLIENT_REDIRECT_URI,
  'http://[::1]/native/cb',
  'http://127.0.0.1:7000/fixed',
  'http://localhost/by-name',
]

const ACCEPTED = [
  'http://127.0.0.1:54321/tessera/callback',
  'http://127.0.0.1:1/tessera/callback',
  'http://127.0.0.1:65535/tessera/callback',
  'http://127.0.0.1/tessera/callback',
  'http://[::1]:4000/native/cb',
  'http://[::1]/native/cb',
  // A loopback entry with a port is an exact entry like any other.
  'http://127.0.0.1:7000/fixed',
]

const REFUSED: Array<[string, string]> = [
  ['another path', 'http://127.0.0.1:54321/tessera/other'],
  ['a longer path', 'http://127.0.0.1:54321/tessera/callback/more'],
  ['a trailing slash', 'http://127.0.0.1:54321/tessera/callback/'],
  ['a query', 'http://127.0.0.1:54321/tessera/callback?next=/x'],
  ['a fragment', 'http://127.0.0.1:54321/tessera/callback#x'],
  ['localhost', 'http://localhost:54321/tessera/callback'],
  ['another loopback address', 'http://127.0.0.2:54321/tessera/callback'],
  ['IPv6 for an IPv4 entry', 'http://[::1]:54321/tessera/callback'],
  ['another scheme', 'https://127.0.0.1:54321/tessera/callback'],
  ['userinfo before another host', 'http://127.0.0.1@evil.example/tessera/callback'],
  ['userinfo with a port', 'http://127.0.0.1:54321@evil.example/tessera/callback'],
  ['userinfo before the loopback host', 'http://user@127.0.0.1:54321/tessera/callback'],
  ['a look-alike host', 'http://127.0.0.1.evil.example/tessera/callback'],
  ['a look-alike host with a port', 'http://127.0.0.1.evil.example:54321/tessera/callback'],
  ['a non-loopback host', 'http://evil.example:54321/tessera/callback'],
  ['a shortened address', 'http://127.1:54321/tessera/callback'],
  ['a hexadecimal address', 'http://0x7f000001:54321/tessera/callback'],
  ['a dot segment', 'http://127.0.0.1:54321/tessera/./callback'],
  ['an encoded path', 'http://127.0.0.1:54321/tessera/%63allback'],
  ['an upper-case scheme', 'HTTP://127.0.0.1:54321/tessera/callback'],
  ['a port on a non-loopback entry', 'http://client.test:8080/after-login'],
  ['another port on a loopback entry with one', 'http://127.0.0.1:7001/fixed'],
  ['a port on a localhost entry', 'http://localhost:5000/by-name'],
]

describe('redirectUriAllowed: loopback entries match any port, nothing else', () => {
  const config = loadConfig({
    TESSERA_ISSUER: 'https://id.example.org',
    OAUTH_REDIRECT_URIS: CONFIGURED.join(','),
  })
  for (const uri of ACCEPTED) {
    it(`accepts ${uri}`, () => expect(redirectUriAllowed(config, uri)).toBe(true))
  }
  for (const [what, uri] of REFUSED) {
    it(`refuses ${what}: ${uri}`, () => expect(redirectUriAllowed(config, uri)).toBe(false))
  }
  it('keeps the built-in CLI entry when OAUTH_REDIRECT_URIS is empty', () => {
    const bare = loadConfig({ TESSERA_ISSUER: 'https://id.example.org' })
    expect(redirectUriAllowed(bare, 'http://127.0.0.1:40000/tessera/callback')).toBe(true)
    expect(redirectUriAllowed(bare, 'http://[::1]:40000/native/cb')).toBe(false)
  })
})

for (const dialect of dialects()) {
  describe(`a federated login back to a loopback port [${dialect}]`, () => {
    let federation: Federation
    let app: TestApp

    beforeAll(async () => {
      federation = await startFederation()
      app = await federation.app({ dialect, env: { OAUTH_REDIRECT_URIS: CONFIGURED.join(',') } })
    })
    afterAll(() => federation?.close())

    const pkce = clientPkce()
    const authorize = (browser: Browser, redirectUri: string) =>
      browser.fetch(authorizeUrl('cilogon', `&${pkce.query}&state=cli-state`, redirectUri), {
        headers: { accept: 'application/json' },
      })

    it('authorize refuses another path, localhost, another host and userinfo tricks', async () => {
      for (const [, uri] of REFUSED) {
        const res = await authorize(new Browser(app.url), uri)
        const problem = await expectProblem(res, 400, 'validation_failed')
        expect(problem.detail).toContain('redirect_uri')
      }
    })

    it('the callback sends the one-time code to the port the client listens on', async () => {
      const redirectUri = 'http://127.0.0.1:49152/tessera/callback'
      federation.idp.current = {
        sub: uniqueSubject('loopback'),
        email: uniqueEmail('loopback'),
        email_verified: true,
      }
      const browser = new Browser(app.url)
      const started = await authorize(browser, redirectUri)
      expect(started.status, await started.clone().text()).toBe(200)
      const { authorization_url } = (await started.json()) as { authorization_url: string }
      const callback = await browser.toCallback(authorization_url)
      expect(callback.startsWith(TESSERA_TEST_ISSUER)).toBe(true)
      const back = await browser.fetch(callback)
      expect(back.status).toBe(302)
      const target = new URL(back.headers.get('location')!)
      expect(`${target.origin}${target.pathname}`).toBe(redirectUri)
      expect(target.searchParams.get('state')).toBe('cli-state')
      const code = target.searchParams.get('code')!
      await tokenPairOf(
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code, code_verifier: pkce.verifier },
        }),
      )
    })
  })
}
