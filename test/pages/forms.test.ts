/**
 * The pages' forms over HTTP (README, "Pages"): plain labelled HTML under a strict CSP, the two
 * CSRF defences, refusals shown with their code, and `return_to` limited to the allow-list and
 * Tessera's own paths, with the one-time login code for an application.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { CLIENT_REDIRECT_URI, clientPkce, TESSERA_TEST_ISSUER } from '../support/oidc.js'
import { formToken, locationOf, PageBrowser, setCookieAttributes } from '../support/pages.js'
import { expectProblem, PASSWORD, register, tokenPairOf, uniqueEmail } from '../support/users.js'

const PAGE_POLICY =
  "default-src 'none'; style-src 'self'; img-src 'self'; " +
  "form-action 'self' http://client.test http://127.0.0.1:* http://[::1]:*; " +
  "frame-ancestors 'none'; base-uri 'none'"
/** The sign-in and account pages run Tessera's passkey script, and only it (README, "Passkeys"). */
const SCRIPT_PAGE_POLICY = PAGE_POLICY.replace(
  "default-src 'none'; ",
  "default-src 'none'; script-src 'self'; connect-src 'self'; ",
)

/** Every visible form control of a page has a <label for> naming its id. */
function expectLabelled(html: string) {
  const controls = [...html.matchAll(/<input (?![^>]*type="hidden")[^>]*>/g)].map((m) => m[0])
  expect(controls.length).toBeGreaterThan(0)
  for (const control of controls) {
    const id = /\bid="([^"]+)"/.exec(control)?.[1]
    expect(id, control).toBeDefined()
    expect(html, `label for ${id}`).toContain(`<label for="${id}">`)
  }
}

for (const dialect of dialects()) {
  describe(`the pages' forms [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { TESSERA_ISSUER: TESSERA_TEST_ISSUER, OAUTH_REDIRECT_URIS: CLIENT_REDIRECT_URI },
      })
    })
    afterAll(() => app?.close())

    async function signedIn() {
      const { email, user } = await register(app, uniqueEmail('forms'))
      const browser = new PageBrowser(app)
      expect(locationOf(await browser.signIn(email, PASSWORD))).toBe('/account')
      const page = await browser.get('/account')
      return { browser, email, user, csrf: formToken(await page.text()) }
    }

    it('pages are 200 HTML with labels, the pages CSP, no-store and the stylesheet', async () => {
      const { browser } = await signedIn()
      const anonymous = new PageBrowser(app)
      for (const [client, path, script] of [
        [anonymous, '/login', true],
        [anonymous, '/register', false],
        [browser, '/account', true],
      ] as const) {
        const res = await client.get(path)
        const html = await res.text()
        expect(res.status, path).toBe(200)
        expect(res.headers.get('content-type')).toBe('text/html; charset=UTF-8')
        expect(res.headers.get('content-security-policy')).toBe(
          script ? SCRIPT_PAGE_POLICY : PAGE_POLICY,
        )
        expect(res.headers.get('cache-control')).toBe('no-store')
        expect(res.headers.get('x-frame-options')).toBe('DENY')
        expect(html).toMatch(/^<!DOCTYPE html><html lang="en">/)
        expect(html).toContain(
          '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        )
        expect(html).toMatch(
          /<link rel="stylesheet" href="\/assets\/tessera\.css\?v=[0-9a-f]{12}"\/>/,
        )
        // No inline script ever; the passkey script where passkeys are offered.
        const scripts = [...html.matchAll(/<script[^>]*>/g)].map((m) => m[0])
        expect(scripts).toEqual(
          script
            ? [expect.stringMatching(/^<script src="\/assets\/passkeys\.js\?v=[0-9a-f]{12}"/)]
            : [],
        )
        expectLabelled(html)
      }
      const signInPage = await (await anonymous.get('/login')).text()
      const stylesheet = /href="(\/assets\/tessera\.css\?v=[0-9a-f]+)"/.exec(signInPage)![1]!
      const css = await app.request(stylesheet)
      expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8')
      expect(css.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
      expect(await css.text()).toContain(':focus-visible')
      // Another version's URL is not cached for long.
      const other = await app.request('/assets/tessera.css?v=0')
      expect(other.headers.get('cache-control')).toBe('public, max-age=300')
    })

    it('the sign-in form sets the double-submit cookie, the form carries it', async () => {
      const browser = new PageBrowser(app)
      const res = await browser.get('/login')
      const cookie = setCookieAttributes(res, 'tessera_csrf')!
      expect(cookie.get('httponly')).toBe('')
      expect(cookie.get('samesite')).toBe('Lax')
      expect(cookie.get('path')).toBe('/')
      expect(formToken(await res.text())).toBe(cookie.get('value'))
      // The same value on the next page: the cookie is only set when missing.
      const again = await browser.get('/register')
      expect(setCookieAttributes(again, 'tessera_csrf')).toBeUndefined()
      expect(formToken(await again.text())).toBe(cookie.get('value'))
    })

    it('a post from another origin, or without Origin and Sec-Fetch-Site, is refused', async () => {
      const { browser, csrf } = await signedIn()
      const fields = { csrf, display_name: 'Mallory' }
      for (const origin of ['http://evil.example', 'null', null]) {
        const page = await browser.post('/account/profile', fields, { origin })
        expect(page.status).toBe(403)
        expect(await page.text()).toContain('<code>csrf_failed</code>')
        // The same refusal as a problem document for a client that does not read HTML.
        const problem = await browser.post('/account/profile', fields, {
          origin,
          headers: { accept: 'application/json' },
        })
        await expectProblem(problem, 403, 'csrf_failed')
      }
      // Sec-Fetch-Site: same-origin stands for a missing Origin (Hono's csrf()).
      const fetchSite = await browser.post('/account/profile', fields, {
        origin: null,
        headers: { 'sec-fetch-site': 'same-origin' },
      })
      expect(locationOf(fetchSite)).toBe('/account?done=profile_saved')
    })

    it('a same-origin post with a missing or wrong token is refused', async () => {
      const { browser, csrf, user } = await signedIn()
      const other = await signedIn()
      for (const token of [undefined, '', csrf.slice(0, -1), other.csrf, 'x'.repeat(43)]) {
        const fields: Record<string, string> = token === undefined ? {} : { csrf: token }
        const res = await browser.post('/account/profile', { ...fields, display_name: 'Mallory' })
        expect(res.status, String(token)).toBe(403)
        expect(await res.text()).toContain('csrf_failed')
      }
      const row = await app.server.tessera.db
        .selectFrom('users')
        .select('display_name')
        .where('id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(row.display_name).toBeNull()
      // The sign-in form: the field must equal the browser's own tessera_csrf cookie.
      const fresh = new PageBrowser(app)
      const token = await fresh.token('/login')
      const stranger = new PageBrowser(app)
      await stranger.get('/login')
      const credentials = { email: uniqueEmail('nobody'), password: PASSWORD }
      expect((await stranger.post('/login', { ...credentials, csrf: token })).status).toBe(403)
      const noCookie = new PageBrowser(app)
      expect((await noCookie.post('/login', { ...credentials, csrf: token })).status).toBe(403)
    })

    it('refused forms are shown again with the reason, status and headers of the API', async () => {
      const { email } = await register(app, uniqueEmail('refused'))
      const browser = new PageBrowser(app)
      const csrf = await browser.token('/login')
      const wrong = await browser.post('/login', { csrf, email, password: 'not the password' })
      expect(wrong.status).toBe(401)
      expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="tessera"')
      const html = await wrong.text()
      expect(html).toContain('The email address or password is wrong.')
      // The address is kept, the password never echoed.
      expect(html).toContain(`value="${email}"`)
      expect(html).not.toContain('not the password')
      expect(browser.cookie('tessera_session')).toBeUndefined()
      // Registration: a taken address, and the password policy's own reason.
      const taken = await browser.post('/register', { csrf, email, password: PASSWORD })
      expect(taken.status).toBe(409)
      expect(await taken.text()).toContain('An account with this email address already exists.')
      const weak = await browser.post('/register', {
        csrf,
        email: uniqueEmail('weak'),
        password: 'password',
      })
      expect(weak.status).toBe(400)
      expect(await weak.text()).toContain('Password is on a list of commonly used passwords')
      // A form that is not a web form.
      const json = await browser.post('/login', {}, { headers: { 'content-type': 'text/plain' } })
      expect(json.status).toBe(415)
    })

    it('registration signs the new account in', async () => {
      const browser = new PageBrowser(app)
      const csrf = await browser.token('/register')
      const email = uniqueEmail('registered')
      const res = await browser.post('/register', {
        csrf,
        email,
        password: PASSWORD,
        display_name: 'Ada Lovelace',
      })
      expect(locationOf(res)).toBe('/account')
      const page = await (await browser.get('/account')).text()
      expect(page).toContain('Signed in as Ada Lovelace')
      expect(page).toContain(email)
    })

    it('the account page changes the display name and signs out everywhere', async () => {
      const { browser, csrf } = await signedIn()
      const saved = await browser.post('/account/profile', { csrf, display_name: ' Grace ' })
      expect(locationOf(saved)).toBe('/account?done=profile_saved')
      const page = await (await browser.get(locationOf(saved))).text()
      expect(page).toContain('Your display name is saved.')
      expect(page).toContain('value="Grace"')
      const everywhere = await browser.post('/account/sign-out-everywhere', { csrf })
      expect(locationOf(everywhere)).toBe('/login?done=signed_out_everywhere')
      expect(locationOf(await browser.get('/account'))).toBe('/login?return_to=%2Faccount')
    })

    it('an open return_to is refused and never redirected to', async () => {
      const refused = [
        'https://evil.example/',
        '//evil.example',
        '/\\evil.example',
        '\\\\evil.example',
        '/\t/evil.example',
        'javascript:alert(1)',
        'evil.example',
        `${CLIENT_REDIRECT_URI}/more`,
        `${CLIENT_REDIRECT_URI}?x=1`,
        `${TESSERA_TEST_ISSUER}.evil.example/`,
      ]
      const { email } = await register(app, uniqueEmail('open-redirect'))
      const browser = new PageBrowser(app)
      const csrf = await browser.token('/login')
      for (const returnTo of refused) {
        const query = `?return_to=${encodeURIComponent(returnTo)}`
        const page = await browser.get(`/login${query}`)
        expect(page.status, returnTo).toBe(400)
        expect(page.headers.get('location')).toBeNull()
        expect(await page.text()).toContain('<code>invalid_return_to</code>')
        const posted = await browser.post('/login', {
          csrf,
          email,
          password: PASSWORD,
          return_to: returnTo,
        })
        expect(posted.status, returnTo).toBe(400)
        expect(posted.headers.get('location')).toBeNull()
        await posted.arrayBuffer()
        await expectProblem(
          await app.request(`/login${query}`, { headers: { accept: 'application/json' } }),
          400,
          'invalid_return_to',
        )
      }
      // Nothing was signed in by the refused posts.
      expect(browser.cookie('tessera_session')).toBeUndefined()
      // A path of Tessera's own is fine.
      const own = await browser.post('/login', {
        csrf,
        email,
        password: PASSWORD,
        return_to: '/account?from=app#top',
      })
      expect(locationOf(own)).toBe('/account?from=app#top')
    })

    it('an application signs in via /login?return_to= and exchanges the code', async () => {
      const { email, user } = await register(app, uniqueEmail('app'))
      const pkce = clientPkce()
      const request = {
        return_to: CLIENT_REDIRECT_URI,
        state: 'app-state-1',
        code_challenge: pkce.challenge,
        code_challenge_method: 'S256',
      }
      const browser = new PageBrowser(app)
      const query = new URLSearchParams(request).toString()
      const page = await (await browser.get(`/login?${query}`)).text()
      expect(page).toContain('to continue to <strong>client.test</strong>')
      for (const [name, value] of Object.entries(request))
        expect(page).toContain(`<input type="hidden" name="${name}" value="${value}"/>`)
      const res = await browser.post('/login', {
        csrf: formToken(page),
        email,
        password: PASSWORD,
        ...request,
      })
      const back = new URL(locationOf(res))
      expect(`${back.origin}${back.pathname}`).toBe(CLIENT_REDIRECT_URI)
      expect(back.searchParams.get('state')).toBe('app-state-1')
      const code = back.searchParams.get('code')!
      const codeRow = await app.server.tessera.db
        .selectFrom('login_codes')
        .select(['provider', 'user_id'])
        .where('user_id', '=', user.id)
        .executeTakeFirstOrThrow()
      expect(codeRow.provider).toBe('password')
      // Only with the application's verifier.
      const exchange = (code_verifier: string) =>
        app.request('/v1/user/auth/oauth/exchange', { json: { code, code_verifier } })
      const pair = await tokenPairOf(await exchange(pkce.verifier))
      const me = await app.request('/v1/user/me', { token: pair.access_token })
      expect(((await me.json()) as { email: string }).email).toBe(email)
      await expectProblem(await exchange(pkce.verifier), 401, 'invalid_login_code')

      // Signed in already: the next application sign-in continues at once, with a new code.
      const second = clientPkce()
      const again = await browser.get(
        `/login?${new URLSearchParams({ ...request, code_challenge: second.challenge })}`,
      )
      const next = new URL(locationOf(again))
      expect(next.searchParams.get('state')).toBe('app-state-1')
      const nextPair = await tokenPairOf(
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code: next.searchParams.get('code'), code_verifier: second.verifier },
        }),
      )
      expect(nextPair.access_token).not.toBe(pair.access_token)
      // The exchanges count under the pages' fixed labels of the federated-login metric.
      const metrics = await (await app.request('/metrics')).text()
      expect(metrics).toMatch(
        /^tessera_federated_logins_total\{provider="password",outcome="ok"\} [1-9]/m,
      )
      expect(metrics).toMatch(
        /^tessera_federated_logins_total\{provider="session",outcome="ok"\} [1-9]/m,
      )
    })

    it('an application sign-in needs its PKCE challenge (OAUTH_CLIENT_PKCE=required)', async () => {
      const browser = new PageBrowser(app)
      const res = await browser.get(`/login?return_to=${encodeURIComponent(CLIENT_REDIRECT_URI)}`, {
        accept: 'application/json',
      })
      const problem = await expectProblem(res, 400, 'validation_failed')
      expect(problem.detail).toContain('code_challenge')
    })
  })
}
