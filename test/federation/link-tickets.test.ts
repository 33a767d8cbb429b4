/**
 * Single-use link URLs (README, "Linking from an API client"): a client holding only a bearer
 * token gets `<issuer>/link/<ticket>` and sends the browser there; the link flow starts as a
 * top-level navigation with no cookie needed beforehand. The ticket works once, for 5 minutes,
 * only for a live, recently authenticated session, and never shows up in a log line.
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatPasetoTime } from '../../src/paseto/time.js'
import type { TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { type Federation, startFederation } from '../support/federation.js'
import {
  BROWSER_COOKIE,
  Browser,
  CLIENT_REDIRECT_URI,
  type FakeOidcProvider,
  TESSERA_TEST_ISSUER,
} from '../support/oidc.js'
import {
  expectProblem,
  PASSWORD,
  registerAndLogin,
  uniqueEmail,
  uniqueSubject,
} from '../support/users.js'

const TICKET_URL = /^http:\/\/tessera\.test\/link\/(tessera_lt_[A-Za-z0-9_-]{43})$/
const DONE = `${TESSERA_TEST_ISSUER}/link/done`

for (const dialect of dialects()) {
  describe(`single-use link URLs [${dialect}]`, () => {
    let federation: Federation
    let app: TestApp
    let idp: FakeOidcProvider
    const logLines: string[] = []

    beforeAll(async () => {
      federation = await startFederation()
      idp = federation.idp
      app = await federation.app({
        dialect,
        env: { REAUTH_MAX_AGE: '300', LOG_LEVEL: 'info' },
        logger: pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) }),
      })
    }, 60_000)
    afterAll(() => federation?.close())

    const linkUrl = (token: string | undefined, provider = 'cilogon', json?: unknown) =>
      app.request(`/v1/user/identities/${provider}/link-url`, {
        method: 'POST',
        ...(token === undefined ? {} : { token }),
        ...(json === undefined ? {} : { json }),
      })

    /** A link URL that must be issued: the URL and its ticket. */
    async function issued(token: string, provider = 'cilogon', json?: unknown) {
      const res = await linkUrl(token, provider, json)
      expect(res.status, await res.clone().text()).toBe(201)
      const body = (await res.json()) as { url: string; expires_at: string }
      const ticket = TICKET_URL.exec(body.url)?.[1]
      expect(ticket, body.url).toBeDefined()
      return { ...body, ticket: ticket! }
    }

    /** Follows a link URL in `browser` through the provider, to where the flow ends. */
    async function follow(browser: Browser, url: string): Promise<URL> {
      const started = await browser.fetch(url)
      expect(started.status, await started.clone().text()).toBe(302)
      const callback = await browser.toCallback(started.headers.get('location')!)
      const back = await browser.fetch(callback)
      expect(back.status).toBe(302)
      return new URL(back.headers.get('location')!)
    }

    const me = async (token: string) =>
      (await (await app.request('/v1/user/me', { token })).json()) as {
        account_type: string
        verified: boolean
        identities: { provider: string }[]
      }

    const linkStates = (userId: string) =>
      app.server.tessera.db
        .selectFrom('oauth_states')
        .select('state_hash')
        .where('link_user_id', '=', userId)
        .execute()

    it('a password account holding only a bearer token verifies with CILogon', async () => {
      const { user, tokens } = await registerAndLogin(app)
      expect(await me(tokens.access_token)).toMatchObject({ account_type: 'regular' })
      const { url, ticket, expires_at } = await issued(tokens.access_token)
      expect(expires_at).toBe(formatPasetoTime(app.clock() + 300_000))

      idp.current = { sub: uniqueSubject('cilogon'), email: uniqueEmail('inst') }
      // A fresh browser: no cookie of Tessera exists before the link URL.
      const browser = new Browser(app.url)
      const started = await browser.fetch(url)
      expect(started.status).toBe(302)
      expect(started.headers.get('location')!.startsWith(idp.issuer)).toBe(true)
      // The flow's first-party binding, exactly as authorize sets it.
      const cookie = started.headers
        .getSetCookie()
        .find((c) => BROWSER_COOKIE.test(c.split('=')[0]!))
      expect(cookie).toMatch(/; Path=\/v1\/user\/authenticate; HttpOnly; SameSite=Lax$/)
      // The ticket in this URL must not travel on to the provider in a Referer.
      expect(started.headers.get('referrer-policy')).toBe('no-referrer')
      expect(started.headers.get('cache-control')).toBe('no-store')
      const callback = await browser.toCallback(started.headers.get('location')!)
      const back = await browser.fetch(callback)
      expect(back.headers.get('location')).toBe(`${DONE}?linked=cilogon`)

      const done = await browser.fetch(back.headers.get('location')!)
      expect(done.status).toBe(200)
      expect(done.headers.get('content-type')).toMatch(/^text\/html/)
      const page = await done.text()
      expect(page).toContain('CILogon linked')
      expect(page).toContain('You can close this window.')

      expect(await me(tokens.access_token)).toMatchObject({
        account_type: 'academic',
        verified: true,
        identities: [{ provider: 'cilogon' }],
      })
      // At rest only the ticket's hash.
      const rows = await app.server.tessera.db
        .selectFrom('link_tickets')
        .selectAll()
        .where('user_id', '=', user.id)
        .execute()
      expect(rows).toHaveLength(1)
      expect(JSON.stringify(rows)).not.toContain(ticket)
      expect(rows[0]!.used_at).not.toBeNull()
    })

    it('a ticket works once; unknown, spent, malformed and expired ones answer alike', async () => {
      const { tokens } = await registerAndLogin(app)
      const spent = await issued(tokens.access_token)
      expect((await new Browser(app.url).fetch(spent.url)).status).toBe(302)
      const expired = await issued(tokens.access_token)
      const stillValid = await issued(tokens.access_token)
      app.clock.advance(299_000)
      expect((await new Browser(app.url).fetch(stillValid.url)).status).toBe(302)
      app.clock.advance(1_000)
      const unknown = `${TESSERA_TEST_ISSUER}/link/tessera_lt_${'A'.repeat(43)}`
      const malformed = `${TESSERA_TEST_ISSUER}/link/not-a-ticket`

      const pages: string[] = []
      for (const url of [spent.url, expired.url, unknown, malformed]) {
        const res = await new Browser(app.url).fetch(url)
        expect([url, res.status]).toEqual([url, 400])
        expect(res.headers.get('content-type')).toMatch(/^text\/html/)
        expect(res.headers.getSetCookie()).toEqual([])
        pages.push(await res.text())
        // A client asking for JSON gets the problem document.
        const json = await new Browser(app.url).fetch(url, {
          headers: { accept: 'application/json' },
        })
        await expectProblem(json, 400, 'invalid_link_ticket')
      }
      expect(new Set(pages).size).toBe(1)
      expect(pages[0]).toContain('unknown, expired or already used')
      app.clock.advance(-300_000)
    })

    it('a ticket whose session ended (logout-all) starts no flow', async () => {
      const { user, tokens } = await registerAndLogin(app)
      const { url } = await issued(tokens.access_token)
      expect(
        (
          await app.request('/v1/user/auth/logout-all', {
            method: 'POST',
            token: tokens.access_token,
          })
        ).status,
      ).toBe(204)
      const browser = new Browser(app.url)
      const res = await browser.fetch(url)
      expect(res.status).toBe(302)
      expect(res.headers.get('location')).toBe(`${DONE}?error=session_ended`)
      expect(browser.cookies(new URL(app.url).host)).toEqual({})
      expect(await linkStates(user.id)).toEqual([])
      const page = await (await browser.fetch(res.headers.get('location')!)).text()
      expect(page).toContain('Nothing was linked')
      // And it is spent all the same.
      expect((await new Browser(app.url).fetch(url)).status).toBe(400)
    })

    it('asking for a link URL needs a recent authentication', async () => {
      const { user, tokens } = await registerAndLogin(app)
      app.clock.advance(301_000)
      const stale = await linkUrl(tokens.access_token)
      expect(stale.headers.get('www-authenticate')).toMatch(
        /error="insufficient_user_authentication", .*max_age=300$/,
      )
      await expectProblem(stale, 401, 'reauthentication_required')
      const rows = await app.server.tessera.db
        .selectFrom('link_tickets')
        .select('ticket_hash')
        .where('user_id', '=', user.id)
        .execute()
      expect(rows).toEqual([])
      const reauth = await app.request('/v1/user/auth/reauthenticate', {
        token: tokens.access_token,
        json: { password: PASSWORD },
      })
      expect(reauth.status).toBe(204)
      await issued(tokens.access_token)
      app.clock.advance(-301_000)
    })

    it('the flow ends where the client asks, if that is allowed', async () => {
      const { tokens } = await registerAndLogin(app)
      const { url } = await issued(tokens.access_token, 'google', {
        redirect_uri: CLIENT_REDIRECT_URI,
      })
      idp.current = { sub: uniqueSubject('google'), email: uniqueEmail('g'), email_verified: true }
      const end = await follow(new Browser(app.url), url)
      expect(end.toString()).toBe(`${CLIENT_REDIRECT_URI}?linked=google`)

      const refused = await linkUrl(tokens.access_token, 'google', {
        redirect_uri: 'https://evil.example/steal',
      })
      const problem = await expectProblem(refused, 400, 'validation_failed')
      expect(problem.detail).toContain('redirect_uri')
    })

    it('bad requests: no token, unknown provider, bad bodies', async () => {
      const { tokens } = await registerAndLogin(app)
      const token = tokens.access_token
      await expectProblem(await linkUrl(undefined), 401, 'unauthorized')
      // github is not configured in this app; nope is no provider at all.
      await expectProblem(await linkUrl(token, 'github'), 404, 'not_found')
      await expectProblem(await linkUrl(token, 'nope'), 404, 'not_found')
      for (const redirect_uri of [42, 'x'.repeat(2049), `${DONE}\u0000`]) {
        await expectProblem(
          await linkUrl(token, 'cilogon', { redirect_uri }),
          400,
          'validation_failed',
        )
      }
      const text = await app.request('/v1/user/identities/cilogon/link-url', {
        method: 'POST',
        token,
        headers: { 'content-type': 'text/plain' },
        body: '{}',
      })
      await expectProblem(text, 415, 'unsupported_media_type')
      const broken = await app.request('/v1/user/identities/cilogon/link-url', {
        method: 'POST',
        token,
        headers: { 'content-type': 'application/json' },
        body: '{',
      })
      await expectProblem(broken, 400, 'validation_failed')
    })

    it('concurrent claims of one ticket: exactly one flow', async () => {
      const { user, tokens } = await registerAndLogin(app)
      const { ticket } = await issued(tokens.access_token)
      const answers = await Promise.all(
        Array.from({ length: 12 }, () =>
          fetch(`${app.url}/link/${ticket}`, { redirect: 'manual' }).then(async (res) => {
            await res.arrayBuffer()
            return res.status
          }),
        ),
      )
      expect(answers.filter((s) => s === 302)).toHaveLength(1)
      expect(answers.filter((s) => s === 400)).toHaveLength(11)
      expect(await linkStates(user.id)).toHaveLength(1)
    })

    it('no ticket reaches the log: the path is logged masked', async () => {
      const { tokens } = await registerAndLogin(app)
      const { ticket, url } = await issued(tokens.access_token)
      await new Browser(app.url).fetch(url)
      await new Browser(app.url).fetch(url)
      const requests = logLines.map((l) => JSON.parse(l) as { path?: string; route?: string })
      expect(logLines.some((l) => l.includes(ticket))).toBe(false)
      expect(logLines.some((l) => l.includes('tessera_lt_'))).toBe(false)
      // `/link/done` is the same route (src/http/routes/link.ts), logged unmasked.
      const linkLines = requests.filter((r) => r.route === '/link/:ticket')
      const ticketLines = linkLines.filter((r) => r.path !== '/link/done')
      expect(ticketLines.length).toBeGreaterThanOrEqual(2)
      expect(new Set(ticketLines.map((r) => r.path))).toEqual(new Set(['/link/<ticket>']))
      expect(linkLines.some((r) => r.path === '/link/done')).toBe(true)
    })
  })
}
