import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
// jose comes with oidc-provider (it is not a direct devDependency); the tests only sign with it.
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose'
import Provider from 'oidc-provider'

/** An upstream account the fake providers log in as (the "user at the provider"). */
export interface UpstreamAccount {
  sub: string
  email?: string
  email_verified?: boolean
  name?: string
  /** What the sign-in proved, put in the ID token's `amr` and `acr` (README, "Second factors"). */
  amr?: string[]
  acr?: string
}

export const TESSERA_TEST_ISSUER = 'http://tessera.test'
export const CLIENT_REDIRECT_URI = 'http://client.test/after-login'
export const OIDC_CLIENTS = ['cilogon', 'google', 'gitlab', 'orcid'] as const

/**
 * Tessera's authorize path for `provider` as a client application builds it: its redirect URI,
 * then `suffix` as it is (`&code_challenge=...`, `&state=...`).
 */
export function authorizePath(
  provider: string,
  suffix = '',
  redirectUri = CLIENT_REDIRECT_URI,
): string {
  const redirect = encodeURIComponent(redirectUri)
  return `/v1/user/authenticate/${provider}/authorize?redirect_uri=${redirect}${suffix}`
}

/** authorizePath on TESSERA_TEST_ISSUER: where a browser is sent to log in. */
export function authorizeUrl(...args: Parameters<typeof authorizePath>): string {
  return TESSERA_TEST_ISSUER + authorizePath(...args)
}

/** A client application's PKCE pair for one flow with Tessera (S256), and its query part. */
export interface ClientPkce {
  verifier: string
  challenge: string
  /** `code_challenge=...&code_challenge_method=S256`, to append to an authorize URL. */
  query: string
}

export function clientPkce(): ClientPkce {
  const verifier = randomBytes(32).toString('base64url')
  const challenge = createHash('sha256').update(verifier).digest('base64url')
  return { verifier, challenge, query: `code_challenge=${challenge}&code_challenge_method=S256` }
}

/** The names of Tessera's per-flow browser-binding cookies in a Set-Cookie list. */
export const BROWSER_COOKIE = /^tessera_oauth_[0-9a-f]{16}$/

/**
 * A real OpenID Provider (panva's oidc-provider) on loopback, with one client per Tessera OIDC
 * provider name. Its login and consent pages answer at once as `current` (set by the test).
 *
 * Its warnings in test output are expected: development signing keys and in-memory adapter, and
 * "Unsupported runtime" on Node 20 (oidc-provider 9 supports Node 22+ upstream, but works on
 * 20.19+, which CI runs). Configuring own keys to silence the first one broke the flows once
 * (own ES256 `jwks` + `enabledJWA`); if retried, pass only `jwks` with an RS256 key and `ttl`.
 */
export interface FakeOidcProvider {
  issuer: string
  current: UpstreamAccount
  env(): Record<string, string>
  close(): Promise<void>
}

export async function startOidcProvider(
  options: {
    /**
     * The issuer of the Tessera its clients redirect back to: a real URL when a real browser
     * follows the flow (the browser cannot resolve TESSERA_TEST_ISSUER).
     */
    tesseraIssuer?: string
  } = {},
): Promise<FakeOidcProvider> {
  const tesseraIssuer = options.tesseraIssuer ?? TESSERA_TEST_ISSUER
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
      redirect_uris: [`${tesseraIssuer}/v1/user/authenticate/${p}/callback`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    // The scopes Tessera asks the real providers for, with the claims those release.
    claims: {
      // `acr` and `amr` in the ID token when the sign-in set them (`UpstreamAccount.amr`/`acr`).
      openid: ['sub', 'acr', 'amr'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      read_user: ['email', 'email_verified', 'name'],
      'org.cilogon.userinfo': ['idp', 'eppn'],
    },
    // The `acr` values its sign-ins may claim (oidc-provider drops `acr` without a list).
    acrValues: ['https://refeds.org/profile/mfa', 'https://refeds.org/profile/sfa'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    findAccount: async (_ctx, sub) => {
      const account = accounts.get(sub)
      if (account === undefined) return undefined
      const { amr: _amr, acr: _acr, ...claims } = account
      return { accountId: sub, claims: async () => claims }
    },
  })
  const callback = provider.callback()
  handler = (async (req: Parameters<typeof callback>[0], res: Parameters<typeof callback>[1]) => {
    if (!req.url?.startsWith('/interaction/')) return callback(req, res)
    try {
      const details = await provider.interactionDetails(req, res)
      if (details.prompt.name === 'login') {
        accounts.set(fake.current.sub, fake.current)
        await provider.interactionFinished(
          req,
          res,
          {
            login: {
              accountId: fake.current.sub,
              ...(fake.current.amr === undefined ? {} : { amr: fake.current.amr }),
              ...(fake.current.acr === undefined ? {} : { acr: fake.current.acr }),
            },
          },
          { mergeWithLastSubmission: false },
        )
        return
      }
      const grant = new provider.Grant({
        accountId: details.session!.accountId,
        clientId: details.params.client_id as string,
      })
      grant.addOIDCScope(String(details.params.scope))
      const grantId = await grant.save()
      await provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      )
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
  current: {
    id: number
    login: string
    name: string | null
    emails: { email: string; primary: boolean; verified: boolean }[]
  }
  env(): Record<string, string>
  close(): Promise<void>
}

export async function startFakeGitHub(): Promise<FakeGitHub> {
  const codes = new Map<
    string,
    { challenge: string; redirectUri: string; user: FakeGitHub['current'] }
  >()
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
    codes.set(code, {
      challenge: q.code_challenge,
      redirectUri: q.redirect_uri!,
      user: structuredClone(fake.current),
    })
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
    return u === undefined
      ? c.json({ message: 'Bad credentials' }, 401)
      : c.json({ id: u.id, login: u.login, name: u.name })
  })
  app.get('/user/emails', (c) => {
    const u = user(c.req.header('authorization'))
    return u === undefined ? c.json({ message: 'Bad credentials' }, 401) : c.json(u.emails)
  })
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () =>
      resolve(s as Server),
    )
  })
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  fake.close = () =>
    new Promise((resolve) => {
      server.close(() => resolve())
      server.closeIdleConnections()
    })
  return fake
}

export interface IdTokenForge {
  /**
   * What a correct provider puts in this login's ID token: iss, sub, aud, iat, exp, nonce, email...
   */
  claims: JWTPayload & { sub: string }
  /**
   * RS256 with the key the JWKS publishes, or with `unpublished`: a key of the same `kid` that is
   * not in the JWKS (an attacker who knows the kid but not the key). `kid` replaces the header's.
   */
  sign(
    payload: JWTPayload,
    options?: { key?: 'published' | 'unpublished'; kid?: string },
  ): Promise<string>
  /** The client secret, for an HS256 token "signed" with it (algorithm confusion). */
  clientSecret: string
}

/** Makes the ID token of a token response from what a correct provider would send. */
export type IdTokenMaker = (forge: IdTokenForge) => string | Promise<string>

/**
 * A hand-rolled OpenID Provider on loopback, for what oidc-provider will not do: answer with an ID
 * token the test chooses. Discovery, a JWKS with one RS256 key, an authorization endpoint that
 * approves at once as `current`, and a token endpoint that checks client secret, redirect URI,
 * code and PKCE S256 as a real one does, then answers with the token `idToken` makes (by default
 * a correct one). One client, configured for Tessera's `provider`.
 */
export interface HandRolledOidcProvider {
  issuer: string
  current: UpstreamAccount
  /** The ID token of the next token responses; undefined: a correct one. */
  idToken: IdTokenMaker | undefined
  /** Token requests that got an ID token (so a refusal happened after the provider answered). */
  tokensIssued: number
  env(): Record<string, string>
  close(): Promise<void>
}

export async function startHandRolledOidcProvider(
  provider: (typeof OIDC_CLIENTS)[number] = 'google',
): Promise<HandRolledOidcProvider> {
  const clientId = `hand-rolled-${provider}`
  const clientSecret = `hand-rolled-secret-${provider}-0123456789`
  const redirectUri = `${TESSERA_TEST_ISSUER}/v1/user/authenticate/${provider}/callback`
  const kid = 'hand-rolled-key-1'
  const published = await generateKeyPair('RS256')
  const unpublished = await generateKeyPair('RS256')
  const jwk = { ...(await exportJWK(published.publicKey)), kid, alg: 'RS256', use: 'sig' }
  const codes = new Map<string, { challenge: string; nonce: string; account: UpstreamAccount }>()
  const fake: HandRolledOidcProvider = {
    issuer: '',
    current: { sub: 'nobody' },
    idToken: undefined,
    tokensIssued: 0,
    env: () => {
      const P = provider.toUpperCase()
      return {
        [`OAUTH_${P}_CLIENT_ID`]: clientId,
        [`OAUTH_${P}_CLIENT_SECRET`]: clientSecret,
        [`OAUTH_${P}_ISSUER`]: fake.issuer,
      }
    },
    close: async () => {},
  }
  const sign: IdTokenForge['sign'] = (payload, options = {}) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? kid })
      .sign(options.key === 'unpublished' ? unpublished.privateKey : published.privateKey)

  const app = new Hono()
  app.get('/.well-known/openid-configuration', (c) =>
    c.json({
      issuer: fake.issuer,
      authorization_endpoint: `${fake.issuer}/authorize`,
      token_endpoint: `${fake.issuer}/token`,
      jwks_uri: `${fake.issuer}/jwks`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['client_secret_post'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: ['openid', 'email', 'profile'],
    }),
  )
  app.get('/jwks', (c) => c.json({ keys: [jwk] }))
  app.get('/authorize', (c) => {
    const q = c.req.query()
    if (
      q.client_id !== clientId ||
      q.redirect_uri !== redirectUri ||
      q.response_type !== 'code' ||
      !q.scope?.split(' ').includes('openid') ||
      q.code_challenge_method !== 'S256' ||
      !q.code_challenge ||
      !q.state ||
      !q.nonce
    ) {
      return c.text('bad authorization request', 400)
    }
    const code = randomBytes(16).toString('base64url')
    codes.set(code, {
      challenge: q.code_challenge,
      nonce: q.nonce,
      account: structuredClone(fake.current),
    })
    const back = new URL(redirectUri)
    back.searchParams.set('code', code)
    back.searchParams.set('state', q.state)
    return c.redirect(back.toString(), 302)
  })
  app.post('/token', async (c) => {
    const form = new URLSearchParams(await c.req.text())
    const code = form.get('code') ?? ''
    const entry = codes.get(code)
    codes.delete(code)
    const challenge = createHash('sha256')
      .update(form.get('code_verifier') ?? '')
      .digest('base64url')
    if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
      return c.json({ error: 'invalid_client' }, 401)
    }
    if (
      form.get('grant_type') !== 'authorization_code' ||
      entry === undefined ||
      entry.challenge !== challenge ||
      form.get('redirect_uri') !== redirectUri
    ) {
      return c.json({ error: 'invalid_grant' }, 400)
    }
    const now = Math.floor(Date.now() / 1000)
    const { sub, ...profile } = entry.account
    const claims = {
      iss: fake.issuer,
      sub,
      aud: clientId,
      iat: now,
      exp: now + 300,
      nonce: entry.nonce,
      ...profile,
    }
    const idToken = await (fake.idToken ?? ((forge) => forge.sign(forge.claims)))({
      claims,
      sign,
      clientSecret,
    })
    fake.tokensIssued += 1
    c.header('cache-control', 'no-store')
    return c.json({
      access_token: randomBytes(16).toString('base64url'),
      token_type: 'Bearer',
      expires_in: 300,
      scope: 'openid email profile',
      id_token: idToken,
    })
  })
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () =>
      resolve(s as Server),
    )
  })
  fake.issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
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
    return new URL(
      url.startsWith(TESSERA_TEST_ISSUER)
        ? this.tesseraUrl + url.slice(TESSERA_TEST_ISSUER.length)
        : url,
    )
  }

  cookie(host: string, name: string): string | undefined {
    return this.jar.get(this.key(host, name))?.value
  }

  /** The cookies this browser holds for `host`, by name. */
  cookies(host: string): Record<string, string> {
    return Object.fromEntries(
      [...this.jar.entries()]
        .filter(([k]) => k.startsWith(`${host}\u0000`))
        .map(([k, c]) => [k.split('\u0000')[1]!, c.value]),
    )
  }

  /** Plants a cookie, as a page of the same site could (cookie tossing). */
  setCookie(host: string, name: string, value: string, path = '/'): void {
    this.jar.set(this.key(host, name), { value, path })
  }

  /** One request with this browser's cookies; stores the cookies of the answer. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const target = this.resolve(url)
    const cookies = [...this.jar.entries()]
      .filter(
        ([k, c]) => k.startsWith(`${target.host}\u0000`) && target.pathname.startsWith(c.path),
      )
      .map(([k, c]) => `${k.split('\u0000')[1]}=${c.value}`)
    const headers = new Headers(init.headers)
    if (cookies.length > 0) headers.set('cookie', cookies.join('; '))
    const res = await fetch(target, { ...init, headers, redirect: 'manual' })
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      const path =
        attrs
          .map((a) => a.trim())
          .find((a) => /^path=/i.test(a))
          ?.slice(5) ?? '/'
      const expired = attrs.some(
        (a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a),
      )
      if (expired || value === '') this.jar.delete(this.key(target.host, name))
      else this.jar.set(this.key(target.host, name), { value, path })
    }
    return res
  }

  /**
   * Follows the provider's redirects from `start` (its authorization URL) until one comes back to
   * Tessera, and returns that callback URL unfetched.
   */
  async toCallback(start: string): Promise<string> {
    let next = start
    for (let hop = 0; hop < 20; hop += 1) {
      const res = await this.fetch(next)
      const location = res.headers.get('location')
      if (location === null)
        throw new Error(`hop ${hop} to ${next}: ${res.status} ${await res.text()}`)
      await res.arrayBuffer()
      next = new URL(location, next).toString()
      if (next.startsWith(TESSERA_TEST_ISSUER)) return next
    }
    throw new Error('the provider never redirected back')
  }

  /**
   * Follows redirects until one leaves for the client's redirect URI (returned, not fetched) or
   * a response is not a redirect (returned as the last response).
   */
  async follow(url: string): Promise<{ url: URL; response?: Response }> {
    let next = url
    for (let hop = 0; hop < 20; hop += 1) {
      if (next.startsWith(CLIENT_REDIRECT_URI.replace(/\/[^/]*$/, '')))
        return { url: new URL(next) }
      const res = await this.fetch(next)
      const location = res.headers.get('location')
      if (res.status < 300 || res.status >= 400 || location === null)
        return { url: new URL(next), response: res }
      await res.arrayBuffer()
      next = new URL(location, this.resolve(next)).toString()
      if (next.startsWith(this.tesseraUrl))
        next = TESSERA_TEST_ISSUER + next.slice(this.tesseraUrl.length)
    }
    throw new Error('too many redirects')
  }
}
