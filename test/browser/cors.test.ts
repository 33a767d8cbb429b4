/**
 * CORS in a real Chromium (README, "Browser front-ends on another origin"): a front-end page at
 * `http://localhost:<p1>` calls Tessera at `http://127.0.0.1:<p2>` with fetch. Listed, it logs in
 * and reads the account; not listed, the browser refuses (fetch rejects) and the request never
 * reaches the route; the public keys are readable from anywhere.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, launchBrowser, type TestBrowser } from '../support/browser.js'
import { type FrontEnd, startFrontEnd } from '../support/front-end.js'
import { PASSWORD, register } from '../support/users.js'

/** What a fetch in the page ended with: its status and body, or the browser's refusal. */
type Outcome = { status: number; body: unknown } | { rejected: string }

/** Runs `fetch(url, init)` in the page, as the front-end's own script would. */
function fetchIn(page: Page, url: string, init: RequestInit = {}): Promise<Outcome> {
  return page.evaluate(
    async ([url, init]) => {
      try {
        const res = await fetch(url, init)
        const text = await res.text()
        return { status: res.status, body: text === '' ? null : JSON.parse(text) }
      } catch (error) {
        return { rejected: String(error) }
      }
    },
    [url, init] as const,
  )
}

const jsonPost = (body: unknown, extra: RequestInit = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
  ...extra,
})

describe.skipIf(chromiumMissing() !== undefined)('CORS in Chromium [sqlite]', () => {
  let frontEnd: FrontEnd
  let app: TestApp
  let browser: TestBrowser

  beforeAll(async () => {
    frontEnd = await startFrontEnd()
    ;[app, browser] = await Promise.all([
      makeTestApp({ env: { CORS_ORIGINS: frontEnd.origin } }),
      launchBrowser(),
    ])
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await app?.close()
    await frontEnd?.close()
  })

  async function pageAt(origin: string): Promise<Page> {
    const { page } = await browser.newPage()
    await page.goto(`${origin}/`)
    return page
  }

  const liveSessions = async (userId: string) =>
    (
      await app.server.tessera.db
        .selectFrom('sessions')
        .select('id')
        .where('user_id', '=', userId)
        .execute()
    ).length

  it('a listed origin logs in and reads the account with the bearer token', async () => {
    const { email, user } = await register(app)
    const page = await pageAt(frontEnd.origin)
    const login = await fetchIn(
      page,
      `${app.url}/v1/user/auth/login`,
      // Credentials, so the browser would keep a device cookie (README): allowed on login.
      jsonPost({ email, password: PASSWORD }, { credentials: 'include' }),
    )
    expect(login).toMatchObject({ status: 200, body: { token_type: 'Bearer' } })
    const { access_token } = (login as { body: { access_token: string } }).body

    const me = await fetchIn(page, `${app.url}/v1/user/me`, {
      headers: { authorization: `Bearer ${access_token}` },
    })
    expect(me).toMatchObject({ status: 200, body: { id: user.id, email } })

    // Errors are readable too, with the header a client needs to react.
    const headers = await page.evaluate(async (url) => {
      const res = await fetch(url)
      return { status: res.status, challenge: res.headers.get('www-authenticate') }
    }, `${app.url}/v1/user/me`)
    expect(headers).toEqual({ status: 401, challenge: 'Bearer realm="tessera"' })

    // Bearer routes take no credentials: asking for them makes the browser refuse the answer.
    const withCookies = await fetchIn(page, `${app.url}/v1/user/me`, {
      headers: { authorization: `Bearer ${access_token}` },
      credentials: 'include',
    })
    expect(withCookies).toHaveProperty('rejected')
  })

  it('an origin not on the list is refused by the browser, and its login never runs', async () => {
    const { email, user } = await register(app)
    // The same page, but at 127.0.0.1: another origin, not on the list.
    const page = await pageAt(`http://127.0.0.1:${frontEnd.port}`)
    const login = await fetchIn(
      page,
      `${app.url}/v1/user/auth/login`,
      jsonPost({ email, password: PASSWORD }),
    )
    expect(login).toHaveProperty('rejected')
    expect((login as { rejected: string }).rejected).toMatch(/Failed to fetch/)
    // The refused preflight stopped the POST itself: no session was opened.
    expect(await liveSessions(user.id)).toBe(0)
  })

  it('the public keys are readable from any origin', async () => {
    for (const origin of [frontEnd.origin, `http://127.0.0.1:${frontEnd.port}`]) {
      const page = await pageAt(origin)
      const keys = await fetchIn(page, `${app.url}/v1/keys`)
      expect(keys).toMatchObject({ status: 200 })
      expect((keys as { body: { keys: unknown[] } }).body.keys.length).toBeGreaterThan(0)
    }
  })
})
