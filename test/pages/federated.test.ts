/**
 * Federated sign-in and linking from the pages, over HTTP against the oidc-provider stand-in
 * (README, "Pages"): the sign-in page as its own PKCE client with a pending cookie bound to the
 * browser, errors back on the sign-in page, CILogon verification from the account page, and the
 * re-authentication step before linking and unlinking.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import { CLIENT_REDIRECT_URI, clientPkce, TESSERA_TEST_ISSUER } from '../support/oidc.js'
import { formToken, locationOf, PageBrowser, setCookieAttributes } from '../support/pages.js'
import {
  login,
  PASSWORD,
  register,
  tokenPairOf,
  uniqueEmail,
  uniqueSubject,
} from '../support/users.js'

const MAX_AGE = 300

for (const dialect of dialects()) {
  describe(`federated sign-in and linking from the pages [${dialect}]`, () => {
    let federation: Federation
    let app: TestApp

    beforeAll(async () => {
      federation = await startFederation()
      app = await federation.app({ dialect, env: { REAUTH_MAX_AGE: String(MAX_AGE) } })
    }, 60_000)
    afterAll(() => federation?.close())

    /** Follows a provider's redirect to Tessera's callback and the callback's answer. */
    async function throughProvider(browser: PageBrowser, start: Response): Promise<Response> {
      const authorization = locationOf(start)
      expect(authorization.startsWith(federation.idp.issuer), authorization).toBe(true)
      const callback = await browser.browser.toCallback(authorization)
      const back = await browser.browser.fetch(callback)
      expect(back.status, await back.clone().text()).toBe(302)
      return back
    }

    /** A federated sign-in from the sign-in page, up to the answer of /login/complete. */
    async function providerSignIn(
      browser: PageBrowser,
      provider: string,
      fields: Record<string, string> = {},
    ) {
      const csrf = await browser.token('/login')
      const start = await browser.post('/login/federated', { csrf, provider, ...fields })
      const back = await throughProvider(browser, start)
      return browser.get(locationOf(back))
    }

    const me = async (app: TestApp, email: string) => {
      const { access_token } = await login(app, email)
      return (await (await app.request('/v1/user/me', { token: access_token })).json()) as {
        account_type: string
        verified: boolean
        identities: { provider: string }[]
      }
    }

    it('the sign-in page signs in with CILogon: a new academic account, signed in', async () => {
      const email = uniqueEmail('scholar')
      federation.idp.current = { sub: uniqueSubject('cilogon'), email }
      const browser = new PageBrowser(app)
      const page = await (await browser.get('/login')).text()
      expect(page).toContain('Sign in with CILogon')
      // ORCID only links: no sign-in button for it.
      expect(page).not.toContain('Sign in with ORCID')
      const csrf = formToken(page)
      const start = await browser.post('/login/federated', { csrf, provider: 'cilogon' })
      const pending = [...start.headers.getSetCookie()].find((l) => l.startsWith('tessera_signin_'))
      expect(pending).toMatch(
        new RegExp(
          '^tessera_signin_[0-9a-f]{16}=[A-Za-z0-9_-]+; ' +
            'Max-Age=600; Path=/login/complete; HttpOnly; SameSite=Lax$',
        ),
      )
      const back = await throughProvider(browser, start)
      const complete = new URL(back.headers.get('location')!)
      expect(complete.origin + complete.pathname).toBe(`${TESSERA_TEST_ISSUER}/login/complete`)
      const done = await browser.get(locationOf(back))
      expect(locationOf(done)).toBe('/account')
      const name = /^tessera_signin_[0-9a-f]{16}/.exec(pending!)![0]
      expect(setCookieAttributes(done, name)!.get('max-age')).toBe('0')
      const account = await (await browser.get('/account')).text()
      expect(account).toContain(`Signed in as ${email}`)
      expect(account).toContain('<dd>Academic</dd>')
      expect(account).toContain('<dd>Yes</dd>')
      // No password: the password form is not offered.
      expect(account).toContain('This account has no password')
    })

    it('the code is redeemed only in the browser that started the flow, once', async () => {
      federation.idp.current = {
        sub: uniqueSubject('bound'),
        email: uniqueEmail('bound'),
        email_verified: true,
      }
      const browser = new PageBrowser(app)
      const csrf = await browser.token('/login')
      const start = await browser.post('/login/federated', { csrf, provider: 'google' })
      const back = await throughProvider(browser, start)
      // Another browser (the attacker's victim) gets the same completion URL: no pending cookie.
      const other = new PageBrowser(app)
      const stolen = await other.get(locationOf(back))
      expect(stolen.status).toBe(400)
      expect(await stolen.text()).toContain('<code>invalid_oauth_state</code>')
      expect(other.cookie('tessera_session')).toBeUndefined()
      // The right browser completes, once.
      expect(locationOf(await browser.get(locationOf(back)))).toBe('/account')
      expect((await browser.get(locationOf(back))).status).toBe(400)
    })

    it('a refusal comes back to the sign-in page with its readable message', async () => {
      const { email } = await register(app, uniqueEmail('exists'))
      federation.idp.current = { sub: uniqueSubject('exists'), email, email_verified: true }
      const browser = new PageBrowser(app)
      const done = await providerSignIn(browser, 'google')
      expect(locationOf(done)).toBe('/login?error=account_exists')
      const page = await (await browser.get(locationOf(done))).text()
      expect(page).toContain('An account with this email address already exists.')
      expect(browser.cookie('tessera_session')).toBeUndefined()
      // An unknown code never becomes text on the page.
      const odd = await (await browser.get('/login?error=%3Cscript%3Ealert(1)')).text()
      // The passkey form's own hidden notice is no refusal of the sign-in.
      const visible = odd.replace(/<section data-passkey-section[\s\S]*?<\/section>/, '')
      expect(visible).not.toContain('alert')
      expect(visible).not.toContain('class="notice')
    })

    it('a federated sign-in continues to the application with a login code', async () => {
      federation.idp.current = { sub: uniqueSubject('app'), email: uniqueEmail('app-fed') }
      const pkce = clientPkce()
      const browser = new PageBrowser(app)
      const done = await providerSignIn(browser, 'cilogon', {
        return_to: CLIENT_REDIRECT_URI,
        state: 'fed-app',
        code_challenge: pkce.challenge,
        code_challenge_method: 'S256',
      })
      const back = new URL(locationOf(done))
      expect(back.origin + back.pathname).toBe(CLIENT_REDIRECT_URI)
      expect(back.searchParams.get('state')).toBe('fed-app')
      const pair = await tokenPairOf(
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code: back.searchParams.get('code'), code_verifier: pkce.verifier },
        }),
      )
      const user = await app.request('/v1/user/me', { token: pair.access_token })
      expect(((await user.json()) as { account_type: string }).account_type).toBe('academic')
    })

    it('a password account verifies with CILogon from the account page', async () => {
      const { email } = await register(app, uniqueEmail('verify'))
      const browser = new PageBrowser(app)
      await browser.signIn(email, PASSWORD)
      const page = await (await browser.get('/account')).text()
      expect(page).toContain('Verify academic status with CILogon')
      federation.idp.current = { sub: uniqueSubject('verify'), email: uniqueEmail('inst') }
      const start = await browser.post('/account/link', {
        csrf: formToken(page),
        provider: 'cilogon',
      })
      const back = await throughProvider(browser, start)
      expect(locationOf(back)).toBe('/account?linked=cilogon')
      const linked = await (await browser.get(locationOf(back))).text()
      expect(linked).toContain('CILogon is linked: your account is verified as academic.')
      expect(linked).not.toContain('Verify academic status with CILogon')
      expect(await me(app, email)).toMatchObject({
        account_type: 'academic',
        verified: true,
        identities: [{ provider: 'cilogon' }],
      })
    })

    it('linking and unlinking after REAUTH_MAX_AGE ask for the password first', async () => {
      const { email } = await register(app, uniqueEmail('stepup'))
      const browser = new PageBrowser(app)
      await browser.signIn(email, PASSWORD)
      const csrf = formToken(await (await browser.get('/account')).text())
      app.clock.advance((MAX_AGE + 1) * 1000)
      const step = await browser.post('/account/link', { csrf, provider: 'google' })
      expect(step.status).toBe(200)
      const stepPage = await step.text()
      expect(stepPage).toContain('Confirm it is you')
      expect(stepPage).toContain('name="password"')
      const wrong = await browser.post('/account/reauthenticate', {
        csrf,
        action: 'link',
        provider: 'google',
        password: 'not it at all',
      })
      expect(wrong.status).toBe(401)
      expect(await wrong.text()).toContain('The email address or password is wrong.')
      federation.idp.current = {
        sub: uniqueSubject('stepup'),
        email: uniqueEmail('g'),
        email_verified: true,
      }
      const confirmed = await browser.post('/account/reauthenticate', {
        csrf,
        action: 'link',
        provider: 'google',
        password: PASSWORD,
      })
      expect(locationOf(await throughProvider(browser, confirmed))).toBe('/account?linked=google')
      // Recent now: unlinking goes through at once.
      const unlinked = await browser.post('/account/unlink', { csrf, provider: 'google' })
      expect(locationOf(unlinked)).toBe('/account?done=identity_unlinked#identities')
      expect((await me(app, email)).identities).toEqual([])
    })

    it('an account without a password re-authenticates by signing in again', async () => {
      const subject = uniqueSubject('passwordless')
      federation.idp.current = { sub: subject, email: uniqueEmail('nopass') }
      const browser = new PageBrowser(app)
      expect(locationOf(await providerSignIn(browser, 'cilogon'))).toBe('/account')
      let csrf = formToken(await (await browser.get('/account')).text())
      federation.idp.current = { sub: uniqueSubject('second'), email: uniqueEmail('second') }
      const start = await browser.post('/account/link', { csrf, provider: 'gitlab' })
      expect(locationOf(await throughProvider(browser, start))).toBe('/account?linked=gitlab')
      app.clock.advance((MAX_AGE + 1) * 1000)
      const step = await (
        await browser.post('/account/unlink', { csrf, provider: 'gitlab' })
      ).text()
      expect(step).toContain('Sign in again with CILogon')
      expect(step).not.toContain('name="password"')
      // The step's button: a sign-in that comes back to confirm the change.
      expect(step).toContain('value="/account?continue=unlink:gitlab"')
      const before = browser.cookie('tessera_session')
      federation.idp.current = { sub: subject }
      const again = await browser.post('/login/federated', {
        csrf,
        provider: 'cilogon',
        return_to: '/account?continue=unlink:gitlab',
      })
      const done = await browser.get(locationOf(await throughProvider(browser, again)))
      expect(locationOf(done)).toBe('/account?continue=unlink:gitlab')
      // The sign-in rotated the browser session.
      expect(browser.cookie('tessera_session')).not.toBe(before)
      const confirm = await (await browser.get(locationOf(done))).text()
      expect(confirm).toContain('Confirm: unlink GitLab.')
      csrf = formToken(confirm)
      const unlinked = await browser.post('/account/unlink', { csrf, provider: 'gitlab' })
      expect(locationOf(unlinked)).toBe('/account?done=identity_unlinked#identities')
      // The last way in cannot be unlinked.
      const last = await browser.post('/account/unlink', { csrf, provider: 'cilogon' })
      expect(last.status).toBe(409)
      expect(await last.text()).toContain('This is the only way to sign in to your account')
    })

    it('a link whose browser session ended meanwhile links nothing and says why', async () => {
      const { email } = await register(app, uniqueEmail('ended'))
      const browser = new PageBrowser(app)
      await browser.signIn(email, PASSWORD)
      const csrf = formToken(await (await browser.get('/account')).text())
      federation.idp.current = { sub: uniqueSubject('ended'), email: uniqueEmail('ended-idp') }
      const start = await browser.post('/account/link', { csrf, provider: 'google' })
      const { access_token } = await login(app, email)
      await app.request('/v1/user/auth/logout-all', { method: 'POST', token: access_token })
      const back = await throughProvider(browser, start)
      expect(locationOf(back)).toBe('/account?error=session_ended')
      const toSignIn = await browser.get(locationOf(back))
      expect(locationOf(toSignIn)).toBe('/login?return_to=%2Faccount&error=session_ended')
      expect(await (await browser.get(locationOf(toSignIn))).text()).toContain(
        'Your session ended before the provider answered.',
      )
      expect((await me(app, email)).identities).toEqual([])
    })
  })
}
