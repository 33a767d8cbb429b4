/**
 * The access token as a resource service sees it: checked with an independent PASETO
 * implementation (`paseto-ts`) against the key Tessera publishes, and refused by Tessera itself
 * once it is tampered with, expired, or signed by someone else.
 */
import { verify as pasetoTsVerify } from 'paseto-ts/v4'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publicKeyId } from '../../src/paseto/paserk.js'
import { formatPasetoTime } from '../../src/paseto/time.js'
import { signV4Public } from '../../src/tokens/sign.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  refresh,
  registerAndLogin,
  type TokenPairBody,
} from '../support/users.js'

const ISSUER = 'https://id.tessera.test'
const AUDIENCE = 'sequence-archive'
const TTL = 600
// No job tokens: the longest lifetime Tessera accepts of its own tokens is ACCESS_TOKEN_TTL.
const ENV = {
  TESSERA_ISSUER: ISSUER,
  TESSERA_AUDIENCE: AUDIENCE,
  ACCESS_TOKEN_TTL: String(TTL),
  JOB_TOKEN_MAX_TTL: '0',
}
/** Tessera's verifier accepts this much skew on `exp` (src/verify/token.ts). */
const CLOCK_TOLERANCE_MS = 30_000

const RFC3339_UTC_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface PublishedKey {
  kid: string
  paserk: string
  status: string
  created_at: string
}

interface Parts {
  header: string
  payload: Buffer
  footer: string
}

/** A `v4.public.` token's header, decoded payload (message || signature) and footer text. */
function split(token: string): Parts {
  const [version, purpose, payload, footer, ...rest] = token.split('.')
  expect(rest).toEqual([])
  return {
    header: `${version}.${purpose}.`,
    payload: Buffer.from(payload!, 'base64url'),
    footer: Buffer.from(footer!, 'base64url').toString('utf8'),
  }
}

function join(parts: Parts): string {
  return (
    parts.header +
    parts.payload.toString('base64url') +
    '.' +
    Buffer.from(parts.footer, 'utf8').toString('base64url')
  )
}

function claimsOf(token: string): Record<string, unknown> {
  const { payload } = split(token)
  return JSON.parse(payload.subarray(0, payload.length - 64).toString('utf8')) as Record<
    string,
    unknown
  >
}

async function publishedKeys(app: TestApp): Promise<PublishedKey[]> {
  const res = await app.request('/v1/keys')
  expect(res.status).toBe(200)
  return ((await res.json()) as { keys: PublishedKey[] }).keys
}

/**
 * The key for a token, the way an independent verifier gets it: the footer's kid looked up in
 * `GET /v1/keys`, the `k4.public` PASERK decoded to the raw 32-byte Ed25519 key, and that key
 * handed to paseto-ts as a PASERK of its own making. (paseto-ts 2.0.7 cannot take a public key as
 * bytes: it compares 9 bytes of the key against its 10 magic bytes `k4.public.`.)
 */
async function keyForToken(app: TestApp, token: string): Promise<string> {
  const { kid } = JSON.parse(split(token).footer) as { kid: string }
  const key = (await publishedKeys(app)).find((k) => k.kid === kid)
  expect(key, `kid ${kid} is published`).toBeDefined()
  return pasetoTsKey(key!.paserk)
}

function pasetoTsKey(paserk: string): string {
  expect(paserk.startsWith('k4.public.')).toBe(true)
  const raw = Buffer.from(paserk.slice('k4.public.'.length), 'base64url')
  expect(raw).toHaveLength(32)
  return `k4.public.${raw.toString('base64url')}`
}

/** Tessera's answer to a bearer token: 401 with RFC 6750 `invalid_token`, or the status it gave. */
async function expectTesseraRejects(app: TestApp, token: string, reason?: string) {
  const res = await app.request('/v1/user/me', { token })
  const challenge = res.headers.get('www-authenticate') ?? ''
  await expectProblem(res, 401, 'unauthorized')
  expect(challenge).toContain('error="invalid_token"')
  // The reason is in error_description (not part of the contract, but it shows *why* it failed).
  if (reason !== undefined) expect(challenge).toContain(reason)
}

async function expectTesseraAccepts(app: TestApp, token: string) {
  const res = await app.request('/v1/user/me', { token })
  expect(res.status, await res.clone().text()).toBe(200)
  return (await res.json()) as { id: string; email: string }
}

function flipBit(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes)
  copy[index] = copy[index]! ^ 0x01
  return copy
}

for (const dialect of dialects()) {
  describe(`access tokens [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: ENV })
    })
    afterAll(() => app.close())

    it('the login token verifies with paseto-ts under the published key of its kid', async () => {
      const { tokens } = await registerAndLogin(app)
      expect(tokens.access_token.startsWith('v4.public.')).toBe(true)
      const key = await keyForToken(app, tokens.access_token)
      const { payload, footer } = await pasetoTsVerify(key, tokens.access_token)
      expect(payload).toEqual(claimsOf(tokens.access_token))
      expect(footer).toEqual(JSON.parse(split(tokens.access_token).footer))
    })

    it('the footer is exactly {"kid": k4.pid}, the PASERK id of the published key', async () => {
      const { tokens } = await registerAndLogin(app)
      const { footer } = split(tokens.access_token)
      const { kid } = JSON.parse(footer) as { kid: string }
      expect(footer).toBe(JSON.stringify({ kid }))
      expect(kid).toMatch(/^k4\.pid\.[A-Za-z0-9_-]{44}$/)
      const keys = await publishedKeys(app)
      const key = keys.find((k) => k.kid === kid)
      expect(key?.status).toBe('active')
      expect(publicKeyId(key!.paserk)).toBe(kid)
    })

    it('claims as README "Tokens" says, with the configured issuer, audience, TTL', async () => {
      const { tokens, user, email } = await registerAndLogin(app)
      const claims = claimsOf(tokens.access_token)
      expect(Object.keys(claims).sort()).toEqual([
        'acct',
        'amr',
        'aud',
        'email',
        'email_verified',
        'exp',
        'iat',
        'iss',
        'jti',
        'nbf',
        'scope',
        'sid',
        'sub',
        'verified',
      ])
      expect(claims).toMatchObject({
        iss: ISSUER,
        sub: user.id,
        amr: ['pwd'],
        aud: AUDIENCE,
        acct: 'regular',
        verified: false,
        email_verified: false,
        email,
        // An ordinary login gets every scope (SCOPES, default "read write").
        scope: 'read write',
      })
      for (const name of ['iat', 'nbf', 'exp'] as const) {
        expect(claims[name], name).toMatch(RFC3339_UTC_SECONDS)
      }
      const iat = Date.parse(claims.iat as string)
      const exp = Date.parse(claims.exp as string)
      expect(claims.nbf).toBe(claims.iat)
      expect(exp - iat).toBe(TTL * 1000)
      expect(tokens.expires_in).toBe(TTL)
      // Issued "now" by the server's clock (truncated to the second).
      expect(app.clock() - iat).toBeGreaterThanOrEqual(0)
      expect(app.clock() - iat).toBeLessThan(1000)
      expect(claims.jti).toMatch(UUID)
    })

    it('sid is the id of the session GET /v1/user/sessions lists as current', async () => {
      const { tokens } = await registerAndLogin(app)
      await registerAndLogin(app) // another user's session: not listed
      const res = await app.request('/v1/user/sessions', { token: tokens.access_token })
      expect(res.status).toBe(200)
      const { sessions } = (await res.json()) as { sessions: { id: string; current: boolean }[] }
      expect(sessions).toHaveLength(1)
      expect(sessions[0]).toMatchObject({ id: claimsOf(tokens.access_token).sid, current: true })
    })

    it('a new login has a new sid, a refresh keeps it; every token has its own jti', async () => {
      const { tokens, email } = await registerAndLogin(app)
      const second = await login(app, email)
      const res = await refresh(app, tokens.refresh_token)
      expect(res.status).toBe(200)
      const refreshed = (await res.json()) as TokenPairBody
      const [a, b, c] = [tokens, second, refreshed].map((t) => claimsOf(t.access_token))
      expect(b!.sid).not.toBe(a!.sid)
      expect(c!.sid).toBe(a!.sid)
      expect(new Set([a!.jti, b!.jti, c!.jti]).size).toBe(3)
      await pasetoTsVerify(await keyForToken(app, refreshed.access_token), refreshed.access_token)
    })

    it('a bit flipped in payload or signature: rejected by paseto-ts and Tessera', async () => {
      const { tokens } = await registerAndLogin(app)
      const key = await keyForToken(app, tokens.access_token)
      const parts = split(tokens.access_token)
      const n = parts.payload.length
      const positions = [
        ['first payload byte', 0],
        ['a payload byte in the middle', Math.floor((n - 64) / 2)],
        ['last payload byte before the signature', n - 65],
        ['first signature byte', n - 64],
        ['last signature byte', n - 1],
      ] as const
      // Control: the untouched token passes both.
      await pasetoTsVerify(key, tokens.access_token)
      await expectTesseraAccepts(app, tokens.access_token)
      for (const [where, index] of positions) {
        const forged = join({ ...parts, payload: flipBit(parts.payload, index) })
        expect(forged, where).not.toBe(tokens.access_token)
        expect(() => pasetoTsVerify(key, forged), where).toThrow()
        await expectTesseraRejects(app, forged)
      }
    })

    it('a changed footer (other kid or JSON): rejected by paseto-ts and Tessera', async () => {
      const { tokens } = await registerAndLogin(app)
      const key = await keyForToken(app, tokens.access_token)
      const parts = split(tokens.access_token)
      const { kid } = JSON.parse(parts.footer) as { kid: string }
      const lastChar = kid.at(-2) === 'A' ? 'B' : 'A'
      const otherKid = kid.slice(0, -2) + lastChar + kid.slice(-1)
      const footers = [
        ['another kid', JSON.stringify({ kid: otherKid }), 'unknown_key'],
        ['same kid, whitespace added', `{ "kid": "${kid}" }`, 'bad_signature'],
        ['same kid, an extra member', JSON.stringify({ kid, typ: 'access' }), 'bad_signature'],
        [
          'same kid, a key in the footer',
          JSON.stringify({ kid, wpk: 'k4.public.AAAA' }),
          'bad_signature',
        ],
      ] as const
      for (const [what, footer, reason] of footers) {
        const forged = join({ ...parts, footer })
        expect(() => pasetoTsVerify(key, forged), what).toThrow()
        await expectTesseraRejects(app, forged, reason)
      }
    })

    it('payload and signature under another header: refused by paseto-ts, Tessera', async () => {
      const { tokens } = await registerAndLogin(app)
      const key = await keyForToken(app, tokens.access_token)
      const rest = tokens.access_token.slice('v4.public.'.length)
      for (const header of ['v4.local.', 'v2.public.', 'v3.public.', 'V4.public.', 'v4.PUBLIC.']) {
        const forged = header + rest
        expect(() => pasetoTsVerify(key, forged), header).toThrow()
        await expectTesseraRejects(app, forged, 'unsupported_token')
      }
    })

    it('a token signed by another Tessera instance is refused: its kid is unknown', async () => {
      const other = await makeTestApp({ dialect, env: ENV })
      try {
        const { tokens } = await registerAndLogin(other)
        // It is a perfectly good token where it came from.
        await expectTesseraAccepts(other, tokens.access_token)
        const { kid } = JSON.parse(split(tokens.access_token).footer) as { kid: string }
        expect((await publishedKeys(app)).map((k) => k.kid)).not.toContain(kid)
        await expectTesseraRejects(app, tokens.access_token, 'unknown_key')
        // And paseto-ts with this instance's key agrees.
        const ownKey = pasetoTsKey((await publishedKeys(app))[0]!.paserk)
        expect(() => pasetoTsVerify(ownKey, tokens.access_token)).toThrow()
      } finally {
        await other.close()
      }
    })
  })

  describe(`access token expiry [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: ENV })
    })
    afterAll(() => app.close())

    it('a token is accepted up to ACCESS_TOKEN_TTL + 30 s tolerance, refused after', async () => {
      const { tokens } = await registerAndLogin(app)
      const exp = Date.parse(claimsOf(tokens.access_token).exp as string)
      app.clock.set(exp + CLOCK_TOLERANCE_MS)
      await expectTesseraAccepts(app, tokens.access_token)
      app.clock.set(exp + CLOCK_TOLERANCE_MS + 1000)
      await expectTesseraRejects(app, tokens.access_token, 'expired')
      // The session itself is still live: a refresh gives a token that works again.
      const res = await refresh(app, tokens.refresh_token)
      expect(res.status).toBe(200)
      await expectTesseraAccepts(app, ((await res.json()) as TokenPairBody).access_token)
    })

    it('a token signed with our own key, living over ACCESS_TOKEN_TTL, is refused', async () => {
      const { tokens } = await registerAndLogin(app)
      const claims = claimsOf(tokens.access_token)
      const iat = Date.parse(claims.iat as string)
      const signer = await app.server.tessera.keys.signer()
      const footer = Buffer.from(split(tokens.access_token).footer)
      const resign = (lifetimeMs: number) =>
        signV4Public(signer.key, { ...claims, exp: formatPasetoTime(iat + lifetimeMs) }, footer)
      await expectTesseraAccepts(app, await resign(TTL * 1000))
      await expectTesseraRejects(app, await resign(TTL * 1000 + 1000), 'lifetime_too_long')
      await expectTesseraRejects(app, await resign(10 * 365 * 86_400_000), 'lifetime_too_long')
    })
  })
}
