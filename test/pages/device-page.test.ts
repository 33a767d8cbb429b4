/**
 * The device login's verification page over HTTP (README, "Pages" and "Device login"): sign in
 * first, type the code, see who asks, approve or deny with the session's form token; approving
 * needs a recent authentication, as linking does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { expectOAuthError, poll, startDevice } from '../support/device.js'
import { dialects } from '../support/dialects.js'
import { TESSERA_TEST_ISSUER } from '../support/oidc.js'
import { formToken, locationOf, PageBrowser } from '../support/pages.js'
import { expectProblem, PASSWORD, register, uniqueEmail } from '../support/users.js'

const INVALID_TEXT = 'This code is unknown, expired or already used.'

for (const dialect of dialects()) {
  describe(`the device verification page [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          TESSERA_ISSUER: TESSERA_TEST_ISSUER,
          REAUTH_MAX_AGE: '10',
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
        },
      })
    })
    afterAll(() => app?.close())

    async function signedIn() {
      const { email } = await register(app, uniqueEmail('device-page'))
      const browser = new PageBrowser(app)
      expect(locationOf(await browser.signIn(email, PASSWORD))).toBe('/account')
      return { browser, email, csrf: await browser.token('/device') }
    }

    /** Types the code and answers the confirmation page. */
    async function confirm(browser: PageBrowser, csrf: string, userCode: string) {
      const res = await browser.post('/device', { csrf, user_code: userCode })
      return { status: res.status, html: await res.text() }
    }

    it('not signed in: the sign-in page, which comes back with the code', async () => {
      const started = await startDevice(app, 'tessera-cli', { 'x-forwarded-for': '203.0.113.9' })
      const anonymous = new PageBrowser(app)
      const path = `/device?user_code=${started.user_code}`
      const back = `/login?${new URLSearchParams({ return_to: path })}`
      expect(locationOf(await anonymous.get(path))).toBe(back)
      // The form posts are refused the same way, never decided.
      expect(locationOf(await anonymous.post('/device/approve', { user_code: 'x' }))).toBe(
        `/login?${new URLSearchParams({ return_to: '/device' })}`,
      )
      const { email } = await register(app, uniqueEmail('device-return'))
      const csrf = await anonymous.token(back)
      const signIn = await anonymous.post('/login', {
        csrf,
        email,
        password: PASSWORD,
        return_to: path,
      })
      expect(locationOf(signIn)).toBe(path)
      const page = await (await anonymous.get(path)).text()
      expect(page).toMatch(new RegExp(`name="user_code"[^>]* value="${started.user_code}"`))
    })

    it('the code shows who asks; approving hands the device its tokens', async () => {
      const started = await startDevice(app)
      const { browser, csrf, email } = await signedIn()
      const typed = started.user_code.toLowerCase().replace('-', ' ')
      const shown = await confirm(browser, csrf, typed)
      expect(shown.status, shown.html).toBe(200)
      expect(shown.html).toContain('Approve this device?')
      expect(shown.html).toContain('<dd>tessera-cli</dd>')
      expect(shown.html).toMatch(/<dt>Asked at<\/dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/dd>/)
      expect(shown.html).toContain('action="/device/approve"')
      expect(shown.html).toContain('action="/device/deny"')
      expect(formToken(shown.html)).toBe(csrf)

      const approved = await browser.post('/device/approve', { csrf, user_code: typed })
      expect(locationOf(approved)).toBe('/device?done=device_approved')
      expect(await (await browser.get('/device?done=device_approved')).text()).toContain(
        'The device is logged in to your account.',
      )
      const tokens = await poll(app, started.device_code)
      expect(tokens.status).toBe(200)
      const { access_token } = (await tokens.json()) as { access_token: string }
      const me = await app.request('/v1/user/me', {
        headers: { authorization: `Bearer ${access_token}` },
      })
      expect(((await me.json()) as { email: string }).email).toBe(email)
      // Decided once: the code is now invalid, with the uniform message.
      const again = await confirm(browser, csrf, started.user_code)
      expect(again.status).toBe(400)
      expect(again.html).toContain(INVALID_TEXT)
    })

    it('denying answers access_denied to the device', async () => {
      const started = await startDevice(app)
      const { browser, csrf } = await signedIn()
      const denied = await browser.post('/device/deny', { csrf, user_code: started.user_code })
      expect(locationOf(denied)).toBe('/device?done=device_denied')
      await expectOAuthError(await poll(app, started.device_code), 'access_denied')
    })

    it('a wrong code gets the uniform invalid message, page or problem', async () => {
      const { browser, csrf } = await signedIn()
      for (const code of ['BCDF-GHJK', 'not a code', '']) {
        const wrong = await confirm(browser, csrf, code)
        expect(wrong.status, code).toBe(400)
        expect(wrong.html).toContain(INVALID_TEXT)
        expect(wrong.html).toContain('<div class="notice error" role="alert">')
      }
      const tooLong = await browser.post(
        '/device',
        { csrf, user_code: 'B'.repeat(33) },
        { headers: { accept: 'application/json' } },
      )
      await expectProblem(tooLong, 400, 'validation_failed')
    })

    it('a post without the form token or from another origin decides nothing', async () => {
      const started = await startDevice(app)
      const { browser, csrf } = await signedIn()
      const other = await signedIn()
      for (const token of [undefined, '', other.csrf]) {
        const fields: Record<string, string> = { user_code: started.user_code }
        if (token !== undefined) fields.csrf = token
        for (const path of ['/device', '/device/approve', '/device/deny']) {
          const res = await browser.post(path, fields)
          expect(res.status, `${path} ${token}`).toBe(403)
          expect(await res.text()).toContain('<code>csrf_failed</code>')
        }
      }
      const forged = await browser.post(
        '/device/approve',
        { csrf, user_code: started.user_code },
        { origin: 'http://evil.example', headers: { accept: 'application/json' } },
      )
      await expectProblem(forged, 403, 'csrf_failed')
      await expectOAuthError(await poll(app, started.device_code), 'authorization_pending')
    })

    it('approving long after signing in asks for the password first', async () => {
      const started = await startDevice(app)
      const { browser, csrf } = await signedIn()
      app.clock.advance(30_000)
      const asked = await browser.post('/device/approve', { csrf, user_code: started.user_code })
      const html = await asked.text()
      expect(asked.status, html).toBe(200)
      expect(html).toContain('Confirm it is you')
      expect(html).toContain('action="/device/reauthenticate"')
      expect(html).toContain(`name="user_code" value="${started.user_code}"`)
      await expectOAuthError(await poll(app, started.device_code), 'authorization_pending')

      const wrong = await browser.post('/device/reauthenticate', {
        csrf,
        user_code: started.user_code,
        password: 'not the password',
      })
      expect(wrong.status).toBe(401)
      expect(await wrong.text()).toContain('The email address or password is wrong.')
      const right = await browser.post('/device/reauthenticate', {
        csrf,
        user_code: started.user_code,
        password: PASSWORD,
      })
      expect(locationOf(right)).toBe('/device?done=device_approved')
      app.clock.advance(5_000)
      expect((await poll(app, started.device_code)).status).toBe(200)
    })
  })
}
