import { createHash, randomBytes } from 'node:crypto'
import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import Provider from 'oidc-provider'

/** An upstream account the fake providers log in as (the "user at the provider"). */
export interface UpstreamAccount {
  sub: string
  email?: string
  email_verified?: boolean
  name?: string
}

export const TESSERA_TEST_ISSUER = 'http://tessera.test'
export const CLIENT_REDIRECT_URI = 'http://client.test/after-login'
export const OIDC_CLIENTS = ['cilogon', 'google', 'gitlab', 'orcid'] as const

/**
 * A real OpenID Provider (panva's oidc-provider) on loopback, with one client per Tessera OIDC
 * provider name. Its login and consent pages answer at once as `current` (set by the test).
 */
export interface FakeOidcProvider {
  issuer: string
  current: UpstreamAccount
  env(): Record<string, string>
  close(): Promise<void>
}

export async function startOidcProvider(): Promise<FakeOidcProvider> {
  let handler: ((req: never, res: never) => void) | undefined
  const server = createServer((req, res) => handler?.(req as never, res as never))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const accounts = new Map<string, UpstreamAccount>()
  const fake: FakeOidcProvider = {
    issuer,
    current: { sub: 'nobody' },
    env: () =>
      Object.fromEntries(
        OIDC_CLIENTS.flatMap((p) => {
          const P = p.toUpperCase()
          return [
            [`OAUTH_${P}_CLIENT_ID`, `tessera-${p}`],
            [`OAUTH_${P}_CLIENT_SECRET`, `secret-${p}-0123456789`],
            [`OAUTH_${P}_ISSUER`, issuer],
          ]
        }),
      ),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
  const provider = new Provider(issuer, {
    clients: OIDC_CLIENTS.map((p) => ({
      client_id: `tessera-${p}`,
      client_secret: `secret-${p}-0123456789`,
      redirect_uris: [`${TESSERA_TEST_ISSUER}/v1/user/authenticate/${p}/callback`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    findAccount: async (_ctx, sub) => {
      const account = accounts.get(sub)
      if (account === undefined) return undefined
      return { accountId: sub, claims: async () => ({ ...account }) }
    },
  })
  const callback = provider.callback()
  handler = (async (req: Parameters<typeof callback>[0], res: Parameters<typeof callback>[1]) => {
    if (!req.url?.startsWith('/interaction/')) return callback(req, res)
    try {
      const details = await provider.interactionDetails(req, res)
      if (details.prompt.name === 'login') {
        accounts.set(fake.current.sub, fake.current)
        await provider.interactionFinished(req, res, { login: { accountId: fake.current.sub } }, { mergeWithLastSubmission: false })
        return
      }
      const grant = new provider.Grant({
        accountId: details.session!.accountId,
        clientId: details.params.client_id as string,
      })
      grant.addOIDCScope(String(details.params.scope))
      const grantId = await grant.save()
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
    } catch (error) {
      res.statusCode = 500
      res.end(String(error))
    }
  }) as never
  return fake
}

/**
 * A GitHub-shaped OAuth 2 server: `/login/oauth/authorize` approves at once as `current`,
 * `/login/oauth/access_token` checks client secret and PKCE S256, `/user` and `/user/emails`.
 */
export interface FakeGitHub {
  url: string
  current: { id: number; login: string; name: string | null; emails: { email: string; primary: boolean; verified: boolean }[] }
  env(): Record<string, string>
  close(): Promise<void>
}

export async function startFakeGitHub(): Promise<FakeGitHub> {
  const codes = new Map<string, { challenge: string; redirectUri: string; user: FakeGitHub['current'] }>()
  const tokens = new Map<string, FakeGitHub['current']>()
  const app = new Hono()
  const fake = {
    url: '',
    current: { id: 1, login: 'octo', name: 'Octo Cat', emails: [] },
    env: () => ({
      OAUTH_GITHUB_CLIENT_ID: 'gh-client',
      OAUTH_GITHUB_CLIENT_SECRET: 'gh-secret-0123456789',
      OAUTH_GITHUB_BASE_URL: fake.url,
      OAUTH_GITHUB_API_URL: fake.url,
    }),
    close: async () => {},
  } as FakeGitHub
  app.get('/login/oauth/authorize', (c) => {
    const q = c.req.query()
    if (q.client_id !== 'gh-client' || q.code_challenge_method !== 'S256' || !q.code_challenge) {
      return c.text('bad request', 400)
    }
    const code = randomBytes(12).toString('hex')
    codes.set(code, { challenge: q.code_challenge, redirectUri: q.redirect_uri!, user: structuredClone(fake.current) })
    const back = new URL(q.redirect_uri!)
    back.searchParams.set('code', code)
    back.searchParams.set('state', q.state!)
    return c.redirect(back.toString(), 302)
  })
  app.post('/login/oauth/access_token', async (c) => {
    const form = new URLSearchParams(await c.req.text())
    const entry = codes.get(form.get('code') ?? '')
    codes.delete(form.get('code') ?? '')
    const verifier = form.get('code_verifier') ?? ''
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    if (
      form.get('client_secret') !== 'gh-secret-0123456789' ||
      entry === undefined ||
      entry.challenge !== challenge ||
      entry.redirectUri !== form.get('redirect_uri')
    ) {
      // GitHub answers errors with 200 and an error body.
      return c.json({ error: 'bad_verification_code' })
    }
    const token = `gho_${randomBytes(12).toString('hex')}`
    tokens.set(token, entry.user)
    return c.json({ access_token: token, token_type: 'bearer', scope: 'read:user,user:email' })
  })
  const user = (auth: string | undefined) => tokens.get(auth?.replace(/^Bearer /, '') ?? '')
  app.get('/user', (c) => {
    const u = user(c.req.header('authorization'))
    return u === undefined ? c.json({ message: 'Bad credentials' }, 401) : c.json({ id: u.id, login: u.login, name: u.name })
  })
  app.get('/user/emails', (c) => {
    const u = user(c.req.header('authorization'))
    return u === undefined ? c.json({ message: 'Bad credentials' }, 401) : c.json(u.emails)
  })
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server))
  })
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  fake.close = () =>
    new Promise((resolve) => {
      server.close(() => resolve())
      server.closeIdleConnections()
    })
  return fake
}

/**
 * The browser side: a cookie jar (by host and path) and manual redirect following, so tests see
 * each hop. `tesseraUrl` is where requests to TESSERA_TEST_ISSUER really go.
 */
export class Browser {
  private readonly jar = new Map<string, { value: string; path: string }>()

  constructor(private readonly tesseraUrl: string) {}

  private key(host: string, name: string) {
    return `${host}\u0000${name}`
  }

  private resolve(url: string): URL {
    return new URL(url.startsWith(TESSERA_TEST_ISSUER) ? this.tesseraUrl + url.slice(TESSERA_TEST_ISSUER.length) : url)
  }

  cookie(host: string, name: string): string | undefined {
    return this.jar.get(this.key(host, name))?.value
  }

  /** One request with this browser's cookies; stores the cookies of the answer. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const target = this.resolve(url)
    const cookies = [...this.jar.entries()]
      .filter(([k, c]) => k.startsWith(`${target.host}\u0000`) && target.pathname.startsWith(c.path))
      .map(([k, c]) => `${k.split('\u0000')[1]}=${c.value}`)
    const headers = new Headers(init.headers)
    if (cookies.length > 0) headers.set('cookie', cookies.join('; '))
    const res = await fetch(target, { ...init, headers, redirect: 'manual' })
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      const path = attrs.map((a) => a.trim()).find((a) => /^path=/i.test(a))?.slice(5) ?? '/'
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a))
      if (expired || value === '') this.jar.delete(this.key(target.host, name))
      else this.jar.set(this.key(target.host, name), { value, path })
    }
    return res
  }

  /**
   * Follows redirects until one leaves for the client's redirect URI (returned, not fetched) or
   * a response is not a redirect (returned as the last response).
   */
  async follow(url: string): Promise<{ url: URL; response?: Response }> {
    let next = url
    for (let hop = 0; hop < 20; hop += 1) {
      if (next.startsWith(CLIENT_REDIRECT_URI.replace(/\/[^/]*$/, ''))) return { url: new URL(next) }
      const res = await this.fetch(next)
      const location = res.headers.get('location')
      if (res.status < 300 || res.status >= 400 || location === null) return { url: new URL(next), response: res }
      await res.arrayBuffer()
      next = new URL(location, this.resolve(next)).toString()
      if (next.startsWith(this.tesseraUrl)) next = TESSERA_TEST_ISSUER + next.slice(this.tesseraUrl.length)
    }
    throw new Error('too many redirects')
  }
}
