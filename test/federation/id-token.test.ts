/**
 * ID tokens Tessera must refuse (docs/security.md, "Federation": ID token `iss`, `aud`, signature
 * and `alg` checked). oidc-provider always signs correctly, so Google's issuer here is a
 * hand-rolled provider whose token endpoint answers with the ID token each test makes. Every
 * forgery differs from the control case (which logs in) in one respect only, reaches Tessera
 * (the provider issued it), is refused for that respect (the logged reason), and creates nothing.
 */
import { Buffer } from 'node:buffer'
import { SignJWT, UnsecuredJWT } from 'jose'
import { pino } from 'pino'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { federationEnv } from '../support/federation.js'
import {
  authorizeUrl,
  Browser,
  CLIENT_REDIRECT_URI,
  clientPkce,
  type HandRolledOidcProvider,
  type IdTokenMaker,
  startHandRolledOidcProvider,
} from '../support/oidc.js'
import { type TokenPairBody, uniqueEmail, uniqueSubject } from '../support/users.js'

const pkce = clientPkce()
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** Each forgery, the reason oauth4webapi gives for refusing it. */
const forgeries: Array<{ name: string; make: IdTokenMaker; refusal: RegExp }> = [
  {
    name: 'signed with a key the JWKS does not publish, under the published kid',
    make: (f) => f.sign(f.claims, { key: 'unpublished' }),
    refusal: /^JWT signature verification failed$/,
  },
  {
    name: 'signed with a key of a kid the JWKS does not list',
    make: (f) => f.sign(f.claims, { key: 'unpublished', kid: 'not-published' }),
    refusal: /no applicable keys found/,
  },
  {
    name: 'with a correct signature over other claims (the payload swapped afterwards)',
    make: async (f) => {
      const [header, , signature] = (await f.sign(f.claims)).split('.')
      return `${header}.${b64url({ ...f.claims, email: uniqueEmail('swapped') })}.${signature}`
    },
    refusal: /^JWT signature verification failed$/,
  },
  {
    name: 'issued to another client (aud)',
    make: (f) => f.sign({ ...f.claims, aud: 'another-client' }),
    refusal: /^unexpected JWT "aud" \(audience\) claim value$/,
  },
  {
    name: 'naming several audiences, none of them Tessera',
    make: (f) => f.sign({ ...f.claims, aud: ['another-client', 'a-third-client'] }),
    refusal: /^unexpected JWT "aud" \(audience\) claim value$/,
  },
  {
    name: 'from another issuer (iss)',
    make: (f) => f.sign({ ...f.claims, iss: 'https://accounts.google.com' }),
    refusal: /^unexpected JWT "iss" \(issuer\) claim value$/,
  },
  {
    name: 'unsigned (alg "none")',
    make: (f) => new UnsecuredJWT(f.claims).encode(),
    refusal: /^unexpected JWT "alg" header parameter$/,
  },
  {
    name: 'HS256 with the client secret as key (algorithm confusion)',
    make: (f) =>
      new SignJWT(f.claims)
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(f.clientSecret)),
    refusal: /^unexpected JWT "alg" header parameter$/,
  },
  {
    name: 'expired',
    make: (f) => f.sign({ ...f.claims, iat: f.claims.iat! - 3600, exp: f.claims.iat! - 600 }),
    refusal: /^unexpected JWT "exp" \(expiration time\) claim value/,
  },
]

for (const dialect of dialects()) {
  describe(`ID tokens from the provider's token endpoint [${dialect}]`, () => {
    let app: TestApp
    let idp: HandRolledOidcProvider
    const logLines: string[] = []

    beforeAll(async () => {
      idp = await startHandRolledOidcProvider('google')
      app = await makeTestApp({
        dialect,
        env: federationEnv(idp),
        logger: pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) }),
      })
    }, 60_000)
    afterAll(async () => {
      await app?.close()
      await idp?.close()
    })
    beforeEach(() => {
      idp.idToken = undefined
      logLines.length = 0
    })

    /** Runs a Google sign-in in a fresh browser up to the redirect to the client. */
    async function signIn(): Promise<URL> {
      const browser = new Browser(app.url)
      const res = await browser.fetch(authorizeUrl('google', `&${pkce.query}`), {
        headers: { accept: 'application/json' },
      })
      expect(res.status, await res.clone().text()).toBe(200)
      const { url, response } = await browser.follow(
        ((await res.json()) as { authorization_url: string }).authorization_url,
      )
      expect(
        response,
        response && `${response.status} ${await response.clone().text()}`,
      ).toBeUndefined()
      expect(`${url.origin}${url.pathname}`).toBe(CLIENT_REDIRECT_URI)
      return url
    }

    async function counts() {
      const db = app.server.tessera.db
      const count = async (table: 'users' | 'identities' | 'login_codes' | 'sessions') =>
        Number(
          (
            await db
              .selectFrom(table)
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        )
      return {
        users: await count('users'),
        identities: await count('identities'),
        login_codes: await count('login_codes'),
        sessions: await count('sessions'),
      }
    }

    /** The error messages of Tessera's "federated login refused" log lines. */
    const refusals = () =>
      logLines
        .map((line) => JSON.parse(line) as { msg: string; err?: { message: string } })
        .filter((l) => l.msg === 'federated login refused')
        .map((l) => l.err?.message)

    async function expectLogin(url: URL) {
      expect(url.searchParams.get('error')).toBeNull()
      const code = url.searchParams.get('code')
      expect(code).toMatch(/^tessera_lc_/)
      const exchanged = await app.request('/v1/user/auth/oauth/exchange', {
        json: { code, code_verifier: pkce.verifier },
      })
      expect(exchanged.status, await exchanged.clone().text()).toBe(200)
      return (await exchanged.json()) as TokenPairBody
    }

    it('control: a correct ID token logs in and creates the account', async () => {
      // Correctly signed, from the same provider.
      const email = uniqueEmail('idt-ok')
      idp.current = { sub: uniqueSubject(), email, email_verified: true, name: 'Correct Token' }
      const before = await counts()
      const issued = idp.tokensIssued
      const pair = await expectLogin(await signIn())
      expect(idp.tokensIssued).toBe(issued + 1)
      expect(await counts()).toEqual({
        users: before.users + 1,
        identities: before.identities + 1,
        login_codes: before.login_codes + 1,
        sessions: before.sessions + 1,
      })
      const me = await app.request('/v1/user/me', { token: pair.access_token })
      expect(await me.json()).toMatchObject({
        email,
        display_name: 'Correct Token',
        account_type: 'regular',
      })
      expect(refusals()).toEqual([])
    })

    for (const forgery of forgeries) {
      it(`an ID token ${forgery.name} is refused`, async () => {
        // The client gets ?error=provider_error; nothing is created.
        idp.current = {
          sub: uniqueSubject(),
          email: uniqueEmail('idt-forged'),
          email_verified: true,
        }
        idp.idToken = forgery.make
        const before = await counts()
        const issued = idp.tokensIssued
        const url = await signIn()
        expect(idp.tokensIssued).toBe(issued + 1)
        expect(url.searchParams.get('error')).toBe('provider_error')
        expect(url.searchParams.get('code')).toBeNull()
        expect(await counts()).toEqual(before)
        const reasons = refusals()
        expect(reasons).toHaveLength(1)
        expect(reasons[0]).toMatch(forgery.refusal)
      })
    }

    it('a forged token cannot take over a known identity', async () => {
      // Its subject logs in only with a valid token.
      const victim = {
        sub: uniqueSubject('victim'),
        email: uniqueEmail('victim'),
        email_verified: true,
      }
      idp.current = victim
      await expectLogin(await signIn())
      const before = await counts()
      idp.idToken = (f) => f.sign(f.claims, { key: 'unpublished' })
      const url = await signIn()
      expect(url.searchParams.get('error')).toBe('provider_error')
      expect(await counts()).toEqual(before)
      // Provider keys and discovery stay usable after the refusals: the victim logs in again.
      idp.idToken = undefined
      await expectLogin(await signIn())
      const after = await counts()
      expect(after.users).toBe(before.users)
      expect(after.identities).toBe(before.identities)
    })
  })
}
