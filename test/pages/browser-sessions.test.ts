/**
 * The browser session of Tessera's pages (README, "Pages"): a session row of kind `browser` named
 * by the HttpOnly `tessera_session` cookie, with idle and absolute expiry, rotated on every
 * sign-in, and ended by everything that ends sessions.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { TESSERA_TEST_ISSUER } from '../support/oidc.js'
import { formToken, locationOf, PageBrowser, setCookieAttributes } from '../support/pages.js'
import { login, PASSWORD, register, uniqueEmail } from '../support/users.js'

const TTL = 3600
const IDLE = 600

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url')

for (const dialect of dialects()) {
  describe(`browser sessions [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          TESSERA_ISSUER: TESSERA_TEST_ISSUER,
          BROWSER_SESSION_TTL: String(TTL),
          BROWSER_SESSION_IDLE_TTL: String(IDLE),
        },
      })
    })
    afterAll(() => app?.close())

    /** A registered user signed in to the pages in a fresh browser. */
    async function signedIn(email = uniqueEmail('pages')) {
      const { user } = await register(app, email)
      const browser = new PageBrowser(app)
      const res = await browser.signIn(email, PASSWORD)
      expect(locationOf(res)).toBe('/account')
      return { browser, email, user, secret: browser.cookie('tessera_session')! }
    }

    async function sessionRow(secret: string) {
      return app.server.tessera.db
        .selectFrom('sessions')
        .selectAll()
        .where('cookie_hash', '=', sha256(secret))
        .executeTakeFirst()
    }

    /** Whether the browser's cookie still opens the account page. */
    async function accountOpens(browser: PageBrowser): Promise<boolean> {
      const res = await browser.get('/account')
      await res.arrayBuffer()
      if (res.status === 200) return true
      expect(locationOf(res)).toBe('/login?return_to=%2Faccount')
      return false
    }

    it('the cookie is HttpOnly, SameSite=Lax, Path=/, for the TTL, no Secure on http', async () => {
      const { user } = await register(app, uniqueEmail('cookie'))
      const browser = new PageBrowser(app)
      const csrf = await browser.token('/login')
      const res = await browser.post('/login', { csrf, email: user.email, password: PASSWORD })
      const cookie = setCookieAttributes(res, 'tessera_session')!
      expect(cookie.get('value')).toMatch(/^tessera_bs_[A-Za-z0-9_-]{43}$/)
      expect(cookie.get('httponly')).toBe('')
      expect(cookie.get('samesite')).toBe('Lax')
      expect(cookie.get('path')).toBe('/')
      expect(cookie.get('max-age')).toBe(String(TTL))
      expect(cookie.has('secure')).toBe(false)
      // The row: a browser session holding the cookie's hash only, no refresh token.
      const row = (await sessionRow(cookie.get('value')!))!
      expect(row).toMatchObject({ kind: 'browser', user_id: user.id, revoked_at: null })
      expect(row.expires_at - row.created_at).toBe(TTL * 1000)
      const tokens = await app.server.tessera.db
        .selectFrom('refresh_tokens')
        .select('id')
        .where('family_id', '=', row.id)
        .execute()
      expect(tokens).toEqual([])
      const audit = await app.server.tessera.db
        .selectFrom('audit_events')
        .select(['detail'])
        .where('session_id', '=', row.id)
        .where('event', '=', 'login_succeeded')
        .executeTakeFirstOrThrow()
      expect(JSON.parse(audit.detail!)).toEqual({ method: 'password', kind: 'browser' })
    })

    it('an https issuer makes the cookies Secure', async () => {
      const secure = await makeTestApp({ dialect, env: { TESSERA_ISSUER: 'https://id.test' } })
      try {
        const email = uniqueEmail('secure')
        await register(secure, email)
        const page = await secure.request('/login', { headers: { accept: 'text/html' } })
        const csrfCookie = setCookieAttributes(page, 'tessera_csrf')!
        expect(csrfCookie.has('secure')).toBe(true)
        const res = await secure.request('/login', {
          method: 'POST',
          redirect: 'manual',
          headers: {
            origin: 'https://id.test',
            cookie: `tessera_csrf=${csrfCookie.get('value')}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({
            csrf: formToken(await page.text()),
            email,
            password: PASSWORD,
          }).toString(),
        })
        expect(res.headers.get('location')).toBe('https://id.test/account')
        expect(setCookieAttributes(res, 'tessera_session')!.has('secure')).toBe(true)
      } finally {
        await secure.close()
      }
    })

    it('idle expiry: BROWSER_SESSION_IDLE_TTL after the last page request', async () => {
      const { browser } = await signedIn()
      app.clock.advance((IDLE - 1) * 1000)
      expect(await accountOpens(browser)).toBe(true)
      // Counted from that use, not from the sign-in.
      app.clock.advance((IDLE - 1) * 1000)
      expect(await accountOpens(browser)).toBe(true)
      app.clock.advance(IDLE * 1000)
      expect(await accountOpens(browser)).toBe(false)
    })

    it('absolute expiry: BROWSER_SESSION_TTL after the sign-in, however busy', async () => {
      const { browser, secret } = await signedIn()
      for (let used = 0; used + 500 < TTL; used += 500) {
        app.clock.advance(500_000)
        expect(await accountOpens(browser)).toBe(true)
      }
      app.clock.advance((TTL % 500 || 500) * 1000)
      expect(await accountOpens(browser)).toBe(false)
      // Not in the session list either.
      const row = (await sessionRow(secret))!
      expect(row.expires_at).toBeLessThanOrEqual(app.clock())
    })

    it('last use is written at most once a minute', async () => {
      const { browser, secret } = await signedIn()
      const start = (await sessionRow(secret))!.last_used_at
      app.clock.advance(30_000)
      expect(await accountOpens(browser)).toBe(true)
      expect((await sessionRow(secret))!.last_used_at).toBe(start)
      app.clock.advance(30_000)
      expect(await accountOpens(browser)).toBe(true)
      expect((await sessionRow(secret))!.last_used_at).toBe(start + 60_000)
    })

    it('a sign-in rotates the cookie: the old session ends, planted values are void', async () => {
      const email = uniqueEmail('rotate')
      await register(app, email)
      const browser = new PageBrowser(app)
      // A value planted before the sign-in (session fixation) is not adopted.
      const planted = `tessera_bs_${'A'.repeat(43)}`
      browser.browser.setCookie(browser.host, 'tessera_session', planted)
      // A sign-in form loaded before (another tab): a signed-in browser's /login moves on at once.
      const csrf = await browser.token('/login')
      const signIn = (who: string) =>
        browser.post('/login', { csrf, email: who, password: PASSWORD })
      await signIn(email)
      const first = browser.cookie('tessera_session')!
      expect(first).not.toBe(planted)
      expect(locationOf(await browser.get('/login'))).toBe('/account')
      // Signing in again in the same browser replaces that session.
      await signIn(email)
      const second = browser.cookie('tessera_session')!
      expect(second).not.toBe(first)
      expect(await sessionRow(first)).toMatchObject({ revoked_reason: 'replaced' })
      expect((await sessionRow(second))!.revoked_at).toBeNull()
      const old = new PageBrowser(app)
      old.browser.setCookie(old.host, 'tessera_session', first)
      expect(await accountOpens(old)).toBe(false)
      expect(await accountOpens(browser)).toBe(true)
      // Another user signing in in this browser ends this user's session too.
      const other = uniqueEmail('rotate-other')
      await register(app, other)
      await signIn(other)
      expect(await sessionRow(second)).toMatchObject({ revoked_reason: 'replaced' })
    })

    it('GET /v1/user/sessions lists the browser session with its kind', async () => {
      const { email, secret } = await signedIn()
      const tokens = await login(app, email)
      const res = await app.request('/v1/user/sessions', { token: tokens.access_token })
      const { sessions } = (await res.json()) as {
        sessions: { id: string; kind: string; current: boolean }[]
      }
      const browserRow = (await sessionRow(secret))!
      expect(sessions.map((s) => [s.kind, s.current, s.id === browserRow.id]).sort()).toEqual([
        ['api', true, false],
        ['browser', false, true],
      ])
      // An idle browser session is not live, so it is not listed.
      app.clock.advance((IDLE + 1) * 1000)
      const later = await app.request('/v1/user/sessions', { token: tokens.access_token })
      const listed = ((await later.json()) as { sessions: { kind: string }[] }).sessions
      expect(listed.map((s) => s.kind)).toEqual(['api'])
    })

    it('logout-all, a password change elsewhere, a disable and a revocation end it', async () => {
      const ends: Record<string, (a: { email: string; userId: string; id: string }) => unknown> = {
        logout_all: async ({ email }) => {
          const { access_token } = await login(app, email)
          expect(
            (await app.request('/v1/user/auth/logout-all', { method: 'POST', token: access_token }))
              .status,
          ).toBe(204)
        },
        password_changed: async ({ email }) => {
          const { access_token } = await login(app, email)
          const res = await app.request('/v1/user/password', {
            token: access_token,
            json: { current_password: PASSWORD, new_password: `${PASSWORD}-changed` },
          })
          expect(res.status).toBe(204)
        },
        user_disabled: ({ userId }) => setDisabled(app.server.tessera, userId, true),
        session_deleted: async ({ email, id }) => {
          const { access_token } = await login(app, email)
          const res = await app.request(`/v1/user/sessions/${id}`, {
            method: 'DELETE',
            token: access_token,
          })
          expect(res.status).toBe(204)
        },
      }
      for (const [reason, end] of Object.entries(ends)) {
        const { browser, email, user, secret } = await signedIn()
        expect(await accountOpens(browser)).toBe(true)
        await end({ email, userId: user.id, id: (await sessionRow(secret))!.id })
        expect(await accountOpens(browser), reason).toBe(false)
        expect(await sessionRow(secret), reason).toMatchObject({ revoked_reason: reason })
      }
    })

    it('sign-out ends the session and clears the cookie', async () => {
      const { browser, secret } = await signedIn()
      const page = await browser.get('/account')
      const res = await browser.post('/logout', { csrf: formToken(await page.text()) })
      expect(locationOf(res)).toBe('/login?done=signed_out')
      expect(setCookieAttributes(res, 'tessera_session')!.get('max-age')).toBe('0')
      expect(await sessionRow(secret)).toMatchObject({ revoked_reason: 'logout' })
      const stale = new PageBrowser(app)
      stale.browser.setCookie(stale.host, 'tessera_session', secret)
      expect(await accountOpens(stale)).toBe(false)
      const signedOut = await browser.get('/login?done=signed_out')
      expect(await signedOut.text()).toContain('You are signed out.')
    })
  })
}
