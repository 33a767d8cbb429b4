/**
 * Forward auth that cannot be spoofed (README, "Introspection and forward auth"): a real nginx
 * runs the README's configuration (examples/nginx/tessera-authz.conf, included as it is) in front
 * of a service that reports the headers it received, with auth_request to a running Tessera.
 * Whatever X-Auth-* headers a client sends, the service sees Tessera's values only, and a request
 * Tessera refuses never reaches it.
 */
import { readFileSync } from 'node:fs'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { IDENTITY_HEADERS } from '../../src/http/routes/token.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { enrolTotp, loginWithTotp } from '../support/mfa.js'
import { nginxMissing, type RunningNginx, startNginx } from '../support/nginx.js'
import { login, registerAndLogin } from '../support/users.js'

const example = (path: string) => fileURLToPath(new URL(`../../examples/${path}`, import.meta.url))
const NGINX_EXAMPLE = example('nginx/tessera-authz.conf')
const TRAEFIK_EXAMPLE = example('traefik/tessera-authz.yml')
const README = fileURLToPath(new URL('../../README.md', import.meta.url))

/** The identity headers, lower-cased as Node reports them. */
const IDENTITY = Object.keys(IDENTITY_HEADERS).map((name) => name.toLowerCase())

/** What a client trying to pass as someone else sends, in every spelling nginx might pass on. */
const SPOOFED: string[] = [
  'X-Auth-Subject',
  '00000000-0000-4000-8000-000000000000',
  'x-auth-subject',
  'second-copy',
  'X-Auth-Verified',
  'true',
  'X-AUTH-SESSION',
  'anything',
  'X-Auth-Account-Type',
  'superuser',
  'X-Auth-Amr',
  'pwd otp mfa',
  // A service that maps `_` and `-` alike (CGI-style environments) would read these as the above.
  'X_Auth_Subject',
  'attacker',
  'X_Auth_Verified',
  'true',
]

interface Seen {
  url: string
  /** Every header line the service received, names lower-cased. */
  headers: Array<[string, string]>
}

/** The protected service: answers 200 and records every request it gets. */
async function startEchoService(): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = []
  const server: Server = createServer((req, res) => {
    const headers: Array<[string, string]> = []
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!])
    }
    seen.push({ url: req.url ?? '', headers })
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/** A request with exactly these header lines (duplicates and odd names included). */
function send(
  url: string,
  path: string,
  rawHeaders: string[],
): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    // Node adds no Host to a raw header list; HTTP/1.1 requires one.
    const headers = ['Host', new URL(url).host, ...rawHeaders]
    const req = request(`${url}${path}`, { headers }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The X-Auth-* lines (any spelling) among what the service received. */
function identityLines(seen: Seen): Array<[string, string]> {
  return seen.headers.filter(([name]) => /^x[-_]auth[-_]/.test(name))
}

/** The identity headers of Tessera's own answer to `/v1/authz` for `token`. */
async function tesseraIdentity(app: TestApp, token: string): Promise<Array<[string, string]>> {
  const res = await app.request('/v1/authz', { token })
  expect(res.status).toBe(200)
  await res.body?.cancel()
  return [...res.headers.entries()].filter(([name]) => name.startsWith('x-auth-'))
}

describe('the forward-auth examples', () => {
  const nginxConf = readFileSync(NGINX_EXAMPLE, 'utf8')
  const traefik = readFileSync(TRAEFIK_EXAMPLE, 'utf8')

  it('are in the README exactly as in examples/, so the two cannot drift', () => {
    const readme = readFileSync(README, 'utf8')
    expect(readme).toContain(`\`\`\`nginx\n${nginxConf}\`\`\``)
    expect(readme).toContain(`\`\`\`yaml\n${traefik}\`\`\``)
  })

  it('nginx sets every identity header /v1/authz answers, each from its answer', () => {
    const set = [...nginxConf.matchAll(/^\s*proxy_set_header (X-Auth-\S+) \$(\S+);/gm)]
    const from = new Map(
      [...nginxConf.matchAll(/^\s*auth_request_set \$(\S+) \$upstream_http_(\S+);/gm)].map(
        ([, variable, header]) => [variable!, header!],
      ),
    )
    expect(set.map(([, name]) => name)).toEqual(Object.keys(IDENTITY_HEADERS))
    for (const [, name, variable] of set) {
      expect(from.get(variable!), name).toBe(name!.toLowerCase().replaceAll('-', '_'))
    }
  })

  it('Traefik copies every identity header /v1/authz answers', () => {
    const config = parse(traefik) as {
      http: { middlewares: Record<string, { forwardAuth: { authResponseHeaders: string[] } }> }
    }
    const middleware = config.http.middlewares['tessera-authz']!
    expect(middleware.forwardAuth.authResponseHeaders).toEqual(Object.keys(IDENTITY_HEADERS))
  })
})

const missing = nginxMissing()

for (const dialect of dialects()) {
  describe.skipIf(missing !== undefined)(`nginx in front of a service [${dialect}]`, () => {
    let app: TestApp
    let service: Awaited<ReturnType<typeof startEchoService>>
    let nginx: RunningNginx

    beforeAll(async () => {
      app = await makeTestApp({ dialect })
      service = await startEchoService()
      const tesseraPort = new URL(app.url).port
      nginx = await startNginx({
        http: `  upstream tessera { server 127.0.0.1:${tesseraPort}; }
  upstream catalog { server 127.0.0.1:${service.port}; }`,
        server: `    include ${NGINX_EXAMPLE};`,
      })
    }, 30_000)
    afterAll(async () => {
      await nginx?.close()
      await service?.close()
      await app?.close()
    })

    /** The request as the service saw it, after `fn` made it reach the service once. */
    async function reaching(fn: () => Promise<{ status: number }>): Promise<Seen> {
      const before = service.seen.length
      const res = await fn()
      expect(res.status, nginx.output()).toBe(200)
      expect(service.seen).toHaveLength(before + 1)
      return service.seen.at(-1)!
    }

    it("a valid token: the service sees Tessera's identity headers, no client's", async () => {
      const { tokens, user } = await registerAndLogin(app)
      const seen = await reaching(() =>
        send(nginx.url, '/api/projects', [
          'Authorization',
          `Bearer ${tokens.access_token}`,
          ...SPOOFED,
        ]),
      )
      expect(seen.url).toBe('/api/projects')
      const lines = identityLines(seen)
      // Exactly one line per identity header, each Tessera's value: the lines Tessera answered.
      expect(lines.map(([name]) => name).sort()).toEqual([...IDENTITY].sort())
      expect(lines.sort()).toEqual((await tesseraIdentity(app, tokens.access_token)).sort())
      const value = (name: string) => lines.find(([n]) => n === name)?.[1]
      expect(value('x-auth-subject')).toBe(user.id)
      expect(value('x-auth-account-type')).toBe('regular')
      expect(value('x-auth-verified')).toBe('false')
      expect(value('x-auth-session')).toMatch(/^[0-9a-f-]{36}$/)
      expect(value('x-auth-amr')).toBe('pwd')
    })

    it("X-Auth-Amr is the token's, so the service can require a second factor", async () => {
      const { email } = await registerAndLogin(app)
      const { secret } = await enrolTotp(app, (await login(app, email)).access_token)
      app.clock.advance(60_000)
      const pair = await loginWithTotp(app, email, secret)
      const seen = await reaching(() =>
        send(nginx.url, '/api/upload', [
          'X-Auth-Amr',
          'pwd',
          'Authorization',
          `Bearer ${pair.access_token}`,
        ]),
      )
      expect(identityLines(seen).filter(([name]) => name === 'x-auth-amr')).toEqual([
        ['x-auth-amr', 'pwd otp mfa'],
      ])
    })

    it("X-Auth-Verified is the account's, whatever the client claims", async () => {
      const unverified = await registerAndLogin(app)
      const verified = await registerAndLogin(app)
      await app.server.tessera.db
        .updateTable('users')
        .set({ verified: 1 })
        .where('id', '=', verified.user.id)
        .execute()
      const verifiedToken = (await login(app, verified.email)).access_token
      const cases: Array<[string, string, string]> = [
        [unverified.tokens.access_token, 'true', 'false'],
        [verifiedToken, 'false', 'true'],
      ]
      for (const [token, claimed, expected] of cases) {
        const seen = await reaching(() =>
          send(nginx.url, '/api/runs', [
            'X-Auth-Verified',
            claimed,
            'Authorization',
            `Bearer ${token}`,
            'x-auth-verified',
            claimed,
          ]),
        )
        expect(identityLines(seen).filter(([name]) => name === 'x-auth-verified')).toEqual([
          ['x-auth-verified', expected],
        ])
      }
    })

    it('no token, or one Tessera refuses: 401 from nginx, the service never reached', async () => {
      const { tokens } = await registerAndLogin(app)
      const before = service.seen.length
      const refused: string[][] = [
        SPOOFED,
        ['Authorization', 'Bearer v4.public.forged', ...SPOOFED],
        ['Authorization', `Bearer ${tokens.access_token.slice(0, -4)}AAAA`, ...SPOOFED],
        ['Authorization', `Basic ${Buffer.from('a:b').toString('base64')}`, ...SPOOFED],
      ]
      for (const headers of refused) {
        const res = await send(nginx.url, '/api/projects', headers)
        expect(res.status, headers.slice(0, 2).join(' ')).toBe(401)
        // nginx passes Tessera's challenge on; the identity headers are never in a refusal.
        expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="tessera"/)
        for (const name of IDENTITY) expect(res.headers[name]).toBeUndefined()
      }
      // An expired token too.
      app.clock.advance(16 * 60_000)
      const expired = await send(nginx.url, '/api/projects', [
        'Authorization',
        `Bearer ${tokens.access_token}`,
        ...SPOOFED,
      ])
      expect(expired.status).toBe(401)
      expect(service.seen).toHaveLength(before)
    })

    it('/v1/authz itself answers no identity header when it refuses', async () => {
      for (const token of [undefined, 'v4.public.forged']) {
        const res = await app.request('/v1/authz', token === undefined ? {} : { token })
        expect(res.status).toBe(401)
        await res.body?.cancel()
        expect([...res.headers.keys()].filter((name) => name.startsWith('x-auth-'))).toEqual([])
      }
    })
  })
}
