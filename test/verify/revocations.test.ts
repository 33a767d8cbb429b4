/**
 * `createVerifier(..., { revocations })` against a real Tessera (docs/revocation.md,
 * "Verifiers"): revoked sessions, users and keys are refused with reason `revoked`; the stream
 * resumes after a dropped connection without missing an entry; a forged, re-signed or truncated
 * feed is refused; an unreachable feed keeps the last state, reports staleness and, when asked,
 * fails closed. Between the verifier and Tessera sits a relay this test controls.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Hono } from 'hono'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { rotateSigningKey } from '../../src/keys/rotation.js'
import { recordRevocation } from '../../src/revocations/log.js'
import { importSecretKey, signV4Public } from '../../src/tokens/sign.js'
import {
  auth,
  createVerifier,
  RevocationsUnavailableError,
  requireAuth,
  TokenError,
  type Verifier,
  type VerifierOptions,
} from '../../src/verify/index.js'
import { REVOCATION_DOCUMENT_ASSERTION } from '../../src/verify/revocation-document.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { ISSUER, kidOf } from '../support/revocations.js'
import { login, registerAndLogin } from '../support/users.js'
import { makeSigningKey } from './helpers.js'

type Mode = 'pass' | 'down' | 'drop-entries' | 'resign' | 'resign-as-tessera' | 'truncate'

/** An HTTP relay in front of Tessera that passes, refuses or tampers with what it relays. */
async function startRelay(target: string) {
  const sockets = new Set<Socket>()
  const intruder = makeSigningKey()
  const seen: Array<{ path: string; lastEventId: string | undefined }> = []
  let mode: Mode = 'pass'

  async function tamper(text: string): Promise<string> {
    const { document } = JSON.parse(text) as { document: string }
    const [, , payloadB64, footerB64] = document.split('.') as [string, string, string, string]
    const payload = Buffer.from(payloadB64, 'base64url')
    const claims = JSON.parse(payload.subarray(0, -64).toString('utf8'))
    claims.entries = []
    claims.next = claims.after
    if (mode === 'truncate') return text.slice(0, text.length >> 1)
    if (mode === 'drop-entries') {
      const body = Buffer.concat([Buffer.from(JSON.stringify(claims)), payload.subarray(-64)])
      return JSON.stringify({ document: `v4.public.${body.toString('base64url')}.${footerB64}` })
    }
    const tesseraKid = (
      JSON.parse(Buffer.from(footerB64, 'base64url').toString()) as { kid: string }
    ).kid
    const kid = mode === 'resign' ? intruder.kid : tesseraKid
    const forged = await signV4Public(
      importSecretKey(intruder.raw.secretKey),
      claims,
      Buffer.from(JSON.stringify({ kid })),
      { implicitAssertion: REVOCATION_DOCUMENT_ASSERTION },
    )
    return JSON.stringify({ document: forged })
  }

  async function relay(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const lastEventId = req.headers['last-event-id']
    seen.push({
      path: req.url!,
      lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined,
    })
    if (mode === 'down') {
      req.socket.destroy()
      return
    }
    const upstream = await fetch(target + req.url, {
      headers: {
        ...(typeof lastEventId === 'string' ? { 'last-event-id': lastEventId } : {}),
        accept: String(req.headers.accept ?? '*/*'),
      },
    })
    const headers: Record<string, string> = {}
    upstream.headers.forEach((value, name) => {
      if (name !== 'content-length' && name !== 'transfer-encoding') headers[name] = value
    })
    res.writeHead(upstream.status, headers)
    const pulled = req.url!.startsWith('/v1/revocations?')
    if (pulled && mode !== 'pass' && upstream.status === 200) {
      res.end(await tamper(await upstream.text()))
      return
    }
    if (upstream.body === null) {
      res.end()
      return
    }
    const reader = upstream.body.getReader()
    res.on('close', () => void reader.cancel().catch(() => {}))
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }))
      if (done) break
      res.write(value)
    }
    res.end()
  }

  const server = createServer((req, res) => {
    relay(req, res).catch(() => res.destroy())
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    setMode(next: Mode) {
      mode = next
      // Going down drops what is open too: the event stream breaks off.
      if (next === 'down') for (const socket of sockets) socket.destroy()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

type Relay = Awaited<ReturnType<typeof startRelay>>

/** The reason a verifier gives for a token, or 'ok'. */
async function verdict(verifier: Verifier, token: string): Promise<string> {
  try {
    await verifier.verify(token)
    return 'ok'
  } catch (error) {
    if (error instanceof TokenError) return error.reason
    if (error instanceof RevocationsUnavailableError) return 'unavailable'
    throw error
  }
}

const until = (probe: () => Promise<string> | string, expected: string, timeout = 3_000) =>
  expect.poll(probe, { timeout, interval: 20 }).toBe(expected)

for (const dialect of dialects()) {
  describe(`tessera/verify with the revocation feed [${dialect}]`, () => {
    let app: TestApp
    let relay: Relay
    const verifiers: Verifier[] = []
    beforeAll(async () => {
      // No job tokens: the feed's `ttl` is ACCESS_TOKEN_TTL.
      app = await makeTestApp({ dialect, env: { ACCESS_TOKEN_TTL: '120', JOB_TOKEN_MAX_TTL: '0' } })
      relay = await startRelay(app.url)
    })
    // Each test's verifiers stop with it: the relay's request log is then the current test's.
    afterEach(() => {
      for (const verifier of verifiers.splice(0)) verifier.close()
    })
    afterAll(async () => {
      await relay?.close()
      await app?.close()
    })

    function verifierFor(
      revocations: NonNullable<VerifierOptions['revocations']>,
      options: Partial<VerifierOptions> = {},
    ): Verifier {
      const verifier = createVerifier(
        { keysUrl: `${relay.url}/v1/keys` },
        { issuer: ISSUER, audience: 'tessera', now: app.clock, revocations, ...options },
      )
      verifiers.push(verifier)
      return verifier
    }

    /** A verifier of an app of the test's own, on the real clock and the default cooldown. */
    function streamingVerifierOf(other: TestApp): Verifier {
      const verifier = createVerifier(
        { keysUrl: `${other.url}/v1/keys` },
        { issuer: ISSUER, audience: 'tessera', revocations: { stream: true } },
      )
      verifiers.push(verifier)
      return verifier
    }

    it('stream: a logged-out session is refused as revoked, other sessions are not', async () => {
      const verifier = verifierFor({ stream: true })
      const { email, tokens } = await registerAndLogin(app)
      const other = await login(app, email)
      expect(await verdict(verifier, tokens.access_token)).toBe('ok')
      await app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      await until(() => verdict(verifier, tokens.access_token), 'revoked')
      expect(await verdict(verifier, other.access_token)).toBe('ok')
      expect(verifier.revocationStatus()).toMatchObject({ mode: 'stream', connected: true })
      expect(verifier.revocationStatus()!.stale).toBe(false)
    })

    it('poll: the revocation arrives within the interval', async () => {
      const verifier = verifierFor({ poll: { intervalMs: 200 } })
      const { tokens } = await registerAndLogin(app)
      expect(await verdict(verifier, tokens.access_token)).toBe('ok')
      await app.request('/v1/user/auth/logout-all', { method: 'POST', token: tokens.access_token })
      await until(() => verdict(verifier, tokens.access_token), 'revoked', 1_200)
      expect(verifier.revocationStatus()).toMatchObject({ mode: 'poll', stale: false })
    })

    it('a new verifier knows every live revocation before it answers its first token', async () => {
      const { tokens } = await registerAndLogin(app)
      await app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      for (const mode of [{ stream: true }, { poll: { intervalMs: 60_000 } }] as const) {
        expect(await verdict(verifierFor(mode), tokens.access_token)).toBe('revoked')
      }
    })

    it('a disabled user: tokens issued before are refused, later ones are not', async () => {
      const verifier = verifierFor({ stream: true })
      const { user, email, tokens } = await registerAndLogin(app)
      await setDisabled(app.server.tessera, user.id, true)
      await until(() => verdict(verifier, tokens.access_token), 'revoked')
      await setDisabled(app.server.tessera, user.id, false)
      // A token from the next second on (`iat` has whole seconds) is the user's again.
      app.clock.advance(1_000)
      const again = await login(app, email)
      expect(await verdict(verifier, again.access_token)).toBe('ok')
    })

    it('a revoked signing key: every token it signed is refused', async () => {
      // recordRevocation is what `tessera keys revoke` calls in its transaction. An app of its
      // own, as every token its key signed stops working.
      const isolated = await makeTestApp({ dialect })
      try {
        const verifier = streamingVerifierOf(isolated)
        const { tokens } = await registerAndLogin(isolated)
        const another = await registerAndLogin(isolated)
        expect(await verdict(verifier, tokens.access_token)).toBe('ok')
        await recordRevocation(isolated.server.tessera.db, isolated.server.tessera.clock, {
          kind: 'key',
          kid: kidOf(tokens.access_token),
        })
        await until(() => verdict(verifier, tokens.access_token), 'revoked')
        expect(await verdict(verifier, another.tokens.access_token)).toBe('revoked')
        // What the revoked key signs next, feed documents included, is not believed (this app
        // has no other key to sign with; `tessera keys revoke` moves signing to a new one).
        await isolated.request('/v1/user/auth/logout', {
          json: { refresh_token: another.tokens.refresh_token },
        })
        await until(
          () => verifier.revocationStatus()!.lastError ?? '',
          'signed with an unknown key',
        )
      } finally {
        await isolated.close()
      }
    })

    it('a key activated just now signs the feed: fetched without the cooldown', async () => {
      // `keys revoke` of the active key and `keys rotate --now` both make a key that signs the
      // feed before any verifier has fetched it; the key set's 30 s cooldown must not hold back
      // the entries it signs (docs/revocation.md, "Verifiers").
      const isolated = await makeTestApp({ dialect })
      try {
        const verifier = streamingVerifierOf(isolated)
        const { tokens } = await registerAndLogin(isolated)
        expect(await verdict(verifier, tokens.access_token)).toBe('ok')
        const { kid } = await rotateSigningKey(isolated.server.tessera)
        // Past the signer cache: Tessera now signs everything, feed documents too, with `kid`.
        isolated.clock.advance(11_000)
        await isolated.request('/v1/user/auth/logout', {
          json: { refresh_token: tokens.refresh_token },
        })
        await until(() => verdict(verifier, tokens.access_token), 'revoked', 2_000)
        const pulled = (await (await isolated.request('/v1/revocations')).json()) as {
          document: string
        }
        expect(kidOf(pulled.document)).toBe(kid)
      } finally {
        await isolated.close()
      }
    })

    it('auth() answers 401 invalid_token for a revoked token', async () => {
      const verifier = verifierFor({ stream: true })
      const service = new Hono()
        .use(auth({ verifier }))
        .get('/', requireAuth(), (c) => c.text('ok'))
      const { tokens } = await registerAndLogin(app)
      const call = () =>
        service.request('/', { headers: { authorization: `Bearer ${tokens.access_token}` } })
      expect((await call()).status).toBe(200)
      await app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      await until(async () => String((await call()).status), '401')
      const res = await call()
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"')
      expect(((await res.json()) as { detail: string }).detail).toBe(
        'The access token has been revoked',
      )
    })

    it('resumes after a dropped stream without missing an entry', async () => {
      const verifier = verifierFor({ stream: true })
      const sessions = await Promise.all([1, 2, 3].map(() => registerAndLogin(app)))
      expect(await verdict(verifier, sessions[0]!.tokens.access_token)).toBe('ok')
      await until(() => String(verifier.revocationStatus()!.connected), 'true')
      const cursor = verifier.revocationStatus()!.cursor
      relay.setMode('down')
      const dropped = relay.seen.length
      await until(() => String(verifier.revocationStatus()!.connected), 'false')
      // Written while the verifier cannot hear; meanwhile it keeps what it knew.
      for (const s of sessions) {
        await app.request('/v1/user/auth/logout', {
          json: { refresh_token: s.tokens.refresh_token },
        })
      }
      expect(
        await verdict(verifier, sessions[0]!.tokens.access_token),
        JSON.stringify(verifier.revocationStatus()),
      ).toBe('ok')
      relay.setMode('pass')
      for (const s of sessions) {
        await until(() => verdict(verifier, s.tokens.access_token), 'revoked', 40_000)
      }
      await until(() => String(verifier.revocationStatus()!.connected), 'true', 40_000)
      // Every request since the drop resumed from the cursor it had, never from the start.
      const since = relay.seen.slice(dropped).filter((r) => r.path.startsWith('/v1/revocations'))
      const shown = `cursor ${cursor}, requests ${JSON.stringify(since)}`
      expect(since.length, shown).toBeGreaterThan(0)
      for (const request of since) {
        const after = Number(new URL(request.path, relay.url).searchParams.get('after'))
        expect(after, shown).toBeGreaterThanOrEqual(cursor)
        if (request.path.startsWith('/v1/revocations/stream')) {
          expect(Number(request.lastEventId), shown).toBe(after)
        }
      }
    }, 60_000)

    it('refuses a forged, re-signed or truncated pull response', async () => {
      for (const mode of ['drop-entries', 'resign', 'resign-as-tessera', 'truncate'] as const) {
        const { tokens } = await registerAndLogin(app)
        await app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
        relay.setMode(mode)
        try {
          const verifier = verifierFor({ poll: { intervalMs: 100 } })
          // Nothing the relay made is believed: the entry is not dropped silently, the verifier
          // says it has no fresh feed and why.
          await expect
            .poll(() => verifier.revocationStatus()!.lastError ?? '', { timeout: 3_000 })
            .toMatch(expectedError(mode))
          expect(verifier.revocationStatus()).toMatchObject({ lastSyncAt: undefined, stale: true })
          expect(await verdict(verifier, tokens.access_token)).toBe('ok')
          verifier.close()
        } finally {
          relay.setMode('pass')
        }
      }
    })

    it('an unreachable feed: the last state stays, it is stale, fail-closed refuses', async () => {
      const open = verifierFor({ poll: { intervalMs: 100 } })
      const closing = verifierFor({ poll: { intervalMs: 100 }, failClosedAfterSeconds: 120 })
      const revoked = await registerAndLogin(app)
      await app.request('/v1/user/auth/logout', {
        json: { refresh_token: revoked.tokens.refresh_token },
      })
      for (const verifier of [open, closing]) {
        await until(() => verdict(verifier, revoked.tokens.access_token), 'revoked')
      }
      relay.setMode('down')
      try {
        // ACCESS_TOKEN_TTL=120: the token outlives both steps of the clock below.
        const { tokens } = await registerAndLogin(app)
        app.clock.advance(61_000)
        expect(open.revocationStatus()).toMatchObject({ stale: true })
        await expect.poll(() => open.revocationStatus()!.lastError).toBeDefined()
        expect(await verdict(open, revoked.tokens.access_token)).toBe('revoked')
        expect(await verdict(closing, tokens.access_token)).toBe('ok')
        app.clock.advance(60_000)
        expect(await verdict(closing, tokens.access_token)).toBe('unavailable')
        // auth() answers 503: the token may well be fine.
        const service = new Hono()
          .use(auth({ verifier: closing }))
          .get('/', requireAuth(), (c) => c.text('ok'))
        const res = await service.request('/', {
          headers: { authorization: `Bearer ${tokens.access_token}` },
        })
        expect([res.status, res.headers.get('retry-after')]).toEqual([503, '5'])
      } finally {
        relay.setMode('pass')
      }
      await until(() => String(closing.revocationStatus()!.stale), 'false')
    })

    it('keeps entries only while a token they refuse can still be accepted', async () => {
      const verifier = verifierFor({ poll: { intervalMs: 100 } })
      const { tokens } = await registerAndLogin(app)
      await app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      await until(() => verdict(verifier, tokens.access_token), 'revoked')
      const held = verifier.revocationStatus()!.entries
      expect(held).toBeGreaterThan(0)
      // ACCESS_TOKEN_TTL=120 plus 30 s of skew after the newest entry (whose `at` is rounded up
      // to the second): all of them can go.
      app.clock.advance(152_000)
      await until(() => String(verifier.revocationStatus()!.entries), '0')
      expect(await verdict(verifier, tokens.access_token)).toBe('expired')
    })
  })
}

function expectedError(mode: Mode): RegExp {
  switch (mode) {
    case 'drop-entries':
    case 'resign-as-tessera':
      return /^signature does not verify$/
    case 'resign':
      return /^signed with an unknown key$/
    default:
      return /JSON/
  }
}
