/**
 * Control characters in any text the API accepts (README "HTTP"): NUL gave 500 on PostgreSQL
 * (it cannot store it) with a stack in the log, SQLite stored it; BEL and bidi overrides were
 * accepted in display names. Every field now answers 400 validation_failed naming the field, on
 * both dialects, with nothing logged at error; ids in paths that are not UUIDs are 404 without a
 * query; text from a federated provider is cleaned before it is stored.
 */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { federationEnv } from '../support/federation.js'
import {
  authorizePath,
  authorizeUrl,
  Browser,
  CLIENT_REDIRECT_URI,
  clientPkce,
  type FakeGitHub,
  startFakeGitHub,
} from '../support/oidc.js'
import { login, PASSWORD, register, type TokenPairBody, uniqueEmail } from '../support/users.js'

const SECRET = 'control-characters-service-secret-0123'
/** One of each kind: C0 (NUL, BEL), DEL, C1, bidi marks, overrides, isolates, BOM. */
const CONTROLS = [
  '\u0000',
  '\u0007',
  '\u001B',
  '\u007F',
  '\u0085',
  '\u200E',
  '\u200F',
  '\u202E',
  '\u2066',
  '\uFEFF',
]

for (const dialect of dialects()) {
  describe(`control characters in text fields [${dialect}]`, () => {
    const lines: { level: number; msg?: string }[] = []
    let app: TestApp
    let github: FakeGitHub
    let tokens: TokenPairBody
    let userId: string

    beforeAll(async () => {
      github = await startFakeGitHub()
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString('utf8').split('\n'))
            if (line !== '') lines.push(JSON.parse(line))
          done()
        },
      })
      app = await makeTestApp({
        dialect,
        logger: pino({ level: 'info' }, sink),
        env: {
          ...federationEnv(github),
          SERVICE_SECRET: SECRET,
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_REGISTER_PER_IP: '0',
        },
      })
      const { email, user } = await register(app)
      userId = user.id
      tokens = await login(app, email)
    })
    afterAll(async () => {
      await app?.close()
      await github?.close()
    })

    async function expectRefused(res: Response, field: string) {
      const text = await res.text()
      expect(res.status, text).toBe(400)
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      const body = JSON.parse(text) as {
        code: string
        errors?: { field: string; message: string }[]
      }
      expect(body.code).toBe('validation_failed')
      expect(body.errors).toContainEqual({ field, message: 'must not contain control characters' })
    }

    it('refuses every kind of control character in a display name', async () => {
      for (const c of CONTROLS) {
        await expectRefused(
          await app.request('/v1/user/me', {
            method: 'PATCH',
            token: tokens.access_token,
            json: { display_name: `Ada${c}x` },
          }),
          'display_name',
        )
      }
      // Ordinary non-ASCII text is fine.
      const res = await app.request('/v1/user/me', {
        method: 'PATCH',
        token: tokens.access_token,
        json: { display_name: 'Ada Lovelace — עדה' },
      })
      expect(res.status).toBe(200)
    })

    it('refuses NUL in the fields of every JSON route', async () => {
      // Register, login, register-service, refresh, logout, exchange, introspect, archive.
      const email = uniqueEmail('ctl')
      const cases: [string, Record<string, unknown>, string, Record<string, string>?][] = [
        ['/v1/user/auth/register', { email: `a\u0000${email}`, password: PASSWORD }, 'email'],
        ['/v1/user/auth/register', { email, password: `${PASSWORD}\u0000` }, 'password'],
        [
          '/v1/user/auth/register',
          { email, password: PASSWORD, display_name: 'A\u0000' },
          'display_name',
        ],
        ['/v1/user/auth/login', { email: `${email}\u0000`, password: PASSWORD }, 'email'],
        ['/v1/user/auth/login', { email, password: `\u0000${PASSWORD}` }, 'password'],
        [
          '/v1/user/auth/register-service',
          { email: `s\u0000${email}`, password: PASSWORD },
          'email',
          { 'x-service-secret': SECRET },
        ],
        ['/v1/user/auth/refresh', { refresh_token: 'tessera_rt_\u0000' }, 'refresh_token'],
        ['/v1/user/auth/logout', { refresh_token: 'tessera_rt_\u0000' }, 'refresh_token'],
        ['/v1/user/auth/oauth/exchange', { code: 'tessera_lc_\u0000' }, 'code'],
        [
          '/v1/token/introspect',
          { token: 'v4.public.\u0000' },
          'token',
          { 'x-service-secret': SECRET },
        ],
        [
          '/api/v1/auth/register',
          { email, password: PASSWORD, full_name: 'A\u202Eb' },
          'full_name',
        ],
        ['/api/v1/auth/register', { email, password: PASSWORD, role: 'researcher\u0000' }, 'role'],
        ['/api/v1/auth/login', { email: `${email}\u0000`, password: PASSWORD }, 'email'],
      ]
      for (const [path, json, field, headers] of cases) {
        await expectRefused(await app.request(path, { json, headers }), field)
      }
      await expectRefused(
        await app.request('/v1/user/password', {
          token: tokens.access_token,
          json: { current_password: PASSWORD, new_password: `new-${PASSWORD}\u0007` },
        }),
        'new_password',
      )
    })

    it('404 for path ids that are not UUIDs or providers; a redirect_uri with NUL', async () => {
      for (const path of [
        '/v1/user/sessions/%00',
        '/v1/user/sessions/not-a-uuid',
        '/v1/user/identities/%00',
      ]) {
        const res = await app.request(path, { method: 'DELETE', token: tokens.access_token })
        expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([
          404,
          'not_found',
        ])
      }
      const res = await app.request(`/v1/admin/users/%00/promote`, {
        method: 'POST',
        token: tokens.access_token,
      })
      expect(res.status).toBe(403) // not a superuser: refused before the id is looked at
      const authorize = await app.request(
        authorizePath('github', '', `${CLIENT_REDIRECT_URI}\u0000`),
      )
      await expectRefused(authorize, 'redirect_uri')
      expect(userId).toMatch(/^[0-9a-f-]{36}$/)
    })

    it('drops control characters from a provider’s name and email', async () => {
      // An email holding one is not used.
      github.current = {
        id: 4242,
        login: 'ctl',
        name: '\u202EOcto\u0000 Cat\u0007',
        emails: [{ email: `octo\u0000${uniqueEmail('gh')}`, primary: true, verified: true }],
      }
      const browser = new Browser(app.url)
      const start = await browser.fetch(authorizeUrl('github', `&${clientPkce().query}`), {
        headers: { accept: 'application/json' },
      })
      const { url } = await browser.follow(
        ((await start.json()) as { authorization_url: string }).authorization_url,
      )
      // No usable email: no account can be created from this identity.
      expect(url.searchParams.get('error')).toBe('email_required')

      github.current = {
        ...github.current,
        emails: [{ email: uniqueEmail('gh'), primary: true, verified: true }],
      }
      const again = new Browser(app.url)
      const pkce = clientPkce()
      const restart = await again.fetch(authorizeUrl('github', `&${pkce.query}`), {
        headers: { accept: 'application/json' },
      })
      const done = await again.follow(
        ((await restart.json()) as { authorization_url: string }).authorization_url,
      )
      const code = done.url.searchParams.get('code')
      expect(code, done.url.toString()).toMatch(/^tessera_lc_/)
      const pair = (await (
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code, code_verifier: pkce.verifier },
        })
      ).json()) as TokenPairBody
      const me = (await (
        await app.request('/v1/user/me', { token: pair.access_token })
      ).json()) as { display_name: string }
      expect(me.display_name).toBe('Octo Cat')
    })

    it('logged nothing at error level', () => {
      expect(lines.filter((l) => l.level >= 50)).toEqual([])
    })
  })
}
