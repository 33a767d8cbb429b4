/**
 * The device authorization grant (RFC 8628) over HTTP, on both databases: the device's side
 * (`POST /v1/oauth/device_authorization`, `POST /v1/oauth/token`) through the real app, the
 * user's side through the domain functions the verification page calls, with real sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { deviceCodeHash } from '../../src/device/device-code.js'
import { USER_CODE_ALPHABET, userCodeHash } from '../../src/device/user-code.js'
import { describeUserCode } from '../../src/device/verification.js'
import { TesseraError } from '../../src/errors.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import {
  approveAs,
  CLI_CLIENT,
  DEVICE_GRANT,
  denyAs,
  expectOAuthError,
  poll,
  postForm,
  sessionOf,
  startDevice,
} from '../support/device.js'
import { dialects } from '../support/dialects.js'
import { registerAndLogin, type TokenPairBody, tokenPairOf } from '../support/users.js'

const ISSUER = 'https://id.example.org'
const OTHER_CLIENT = 'platform-sync'

/** The TesseraError code a domain call fails with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    if (error instanceof TesseraError) return error.code
    throw error
  }
  return 'no error'
}

for (const dialect of dialects()) {
  describe(`device authorization grant [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          TESSERA_ISSUER: ISSUER,
          OAUTH_DEVICE_CLIENTS: OTHER_CLIENT,
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_OAUTH_PER_IP: '0',
          RATE_LIMIT_USER_CODE_PER_SESSION: '0',
          RATE_LIMIT_USER_CODE_PER_IP: '0',
        },
      })
    })
    afterAll(() => app?.close())

    const tessera = () => app.server.tessera
    const approver = async () => (await registerAndLogin(app)).tokens

    it('answers the RFC 8628 §3.2 response and records who asked', async () => {
      const started = await startDevice(app, CLI_CLIENT, { 'user-agent': 'tessera-cli/test' })
      expect(started.device_code).toMatch(/^tessera_dc_[A-Za-z0-9_-]{43}$/)
      expect(started.user_code).toMatch(
        new RegExp(`^[${USER_CODE_ALPHABET}]{4}-[${USER_CODE_ALPHABET}]{4}$`),
      )
      expect(started).toMatchObject({
        verification_uri: `${ISSUER}/device`,
        verification_uri_complete: `${ISSUER}/device?user_code=${started.user_code}`,
        expires_in: 600,
        interval: 5,
      })
      // The page shows the requesting client, its address and user agent.
      const { sid } = sessionOf((await approver()).access_token)
      const shown = await describeUserCode(
        tessera(),
        { sessionId: sid, ip: '198.51.100.7' },
        started.user_code,
      )
      expect(shown).toEqual({
        clientId: CLI_CLIENT,
        ip: '127.0.0.1',
        userAgent: 'tessera-cli/test',
        createdAt: app.clock(),
        expiresAt: app.clock() + 600_000,
      })
      // Stored: the device code's SHA-256 and the user code's HMAC, never the codes.
      const rows = await tessera()
        .db.selectFrom('device_authorizations')
        .selectAll()
        .where(
          'user_code_hash',
          '=',
          userCodeHash(tessera().config.keyEncryptionKey, started.user_code.replace('-', '')),
        )
        .execute()
      expect(rows).toHaveLength(1)
      const stored = JSON.stringify(rows)
      expect(stored).not.toContain(started.device_code)
      expect(stored).not.toContain(started.user_code.replace('-', ''))
      expect(rows[0]).toMatchObject({
        status: 'pending',
        interval_seconds: 5,
        client_ip: '127.0.0.1',
      })
    })

    it('takes JSON bodies too, and configured clients', async () => {
      const res = await app.request('/v1/oauth/device_authorization', {
        json: { client_id: OTHER_CLIENT },
      })
      expect(res.status, await res.clone().text()).toBe(200)
    })

    it('refuses unknown clients with invalid_client, at both endpoints', async () => {
      await expectOAuthError(
        await postForm(app, '/v1/oauth/device_authorization', { client_id: 'stranger' }),
        'invalid_client',
      )
      const { device_code } = await startDevice(app)
      await expectOAuthError(await poll(app, device_code, 'stranger'), 'invalid_client')
    })

    it('polls answer authorization_pending until the user decides', async () => {
      const { device_code } = await startDevice(app)
      await expectOAuthError(await poll(app, device_code), 'authorization_pending')
      app.clock.advance(5_000)
      await expectOAuthError(await poll(app, device_code), 'authorization_pending')
    })

    it('polling faster than the interval is slow_down, and the interval grows by 5 s', async () => {
      const { device_code } = await startDevice(app)
      await expectOAuthError(await poll(app, device_code), 'authorization_pending')
      app.clock.advance(4_999)
      await expectOAuthError(await poll(app, device_code), 'slow_down')
      // Now 10 s: 5 s after the last poll is still too fast ...
      app.clock.advance(5_000)
      await expectOAuthError(await poll(app, device_code), 'slow_down')
      // ... 15 s now (it grew again); exactly that long after the last poll is fine.
      app.clock.advance(15_000)
      await expectOAuthError(await poll(app, device_code), 'authorization_pending')
      app.clock.advance(15_000)
      await expectOAuthError(await poll(app, device_code), 'authorization_pending')
      const row = await tessera()
        .db.selectFrom('device_authorizations')
        .select('interval_seconds')
        .where('last_polled_at', '=', app.clock())
        .executeTakeFirstOrThrow()
      expect(row.interval_seconds).toBe(15)
    })

    it('of concurrent pending polls only one passes as slow enough', async () => {
      const { device_code } = await startDevice(app)
      const answers = await Promise.all(
        Array.from(
          { length: 8 },
          async () => (await (await poll(app, device_code)).json()) as { error: string },
        ),
      )
      expect(answers.filter((a) => a.error === 'authorization_pending')).toHaveLength(1)
      expect(answers.filter((a) => a.error === 'slow_down')).toHaveLength(7)
    })

    it('a code past its 10 minutes is expired_token, approved or not', async () => {
      const pending = await startDevice(app)
      const approved = await startDevice(app)
      await approveAs(tessera(), (await approver()).access_token, approved.user_code)
      app.clock.advance(600_000)
      await expectOAuthError(await poll(app, pending.device_code), 'expired_token')
      await expectOAuthError(await poll(app, approved.device_code), 'expired_token')
      // The user can no longer decide it either.
      expect(
        await codeOf(approveAs(tessera(), (await approver()).access_token, pending.user_code)),
      ).toBe('invalid_user_code')
    })

    it('a later device authorization deletes rows 10 minutes past their expiry', async () => {
      const old = await startDevice(app)
      const count = async () =>
        (
          await tessera()
            .db.selectFrom('device_authorizations')
            .select('device_code_hash')
            .where('device_code_hash', '=', deviceCodeHash(old.device_code))
            .execute()
        ).length
      app.clock.advance(1_200_000)
      await startDevice(app)
      // Exactly 10 minutes past its expiry it is kept (a late poll still hears expired_token).
      expect(await count()).toBe(1)
      await expectOAuthError(await poll(app, old.device_code), 'expired_token')
      app.clock.advance(1)
      await startDevice(app)
      expect(await count()).toBe(0)
      await expectOAuthError(await poll(app, old.device_code), 'invalid_grant')
    })

    it('approve: one token pair for the approving account, then invalid_grant', async () => {
      const { device_code, user_code } = await startDevice(app)
      const owner = await registerAndLogin(app)
      await approveAs(tessera(), owner.tokens.access_token, user_code)
      const pair = await tokenPairOf(await poll(app, device_code))
      expect(pair.token_type).toBe('Bearer')
      const me = await app.request('/v1/user/me', { token: pair.access_token })
      expect(((await me.json()) as { email: string }).email).toBe(owner.email)
      // A new session of its own, opened as a device login.
      expect(sessionOf(pair.access_token).sid).not.toBe(sessionOf(owner.tokens.access_token).sid)
      const event = await tessera()
        .db.selectFrom('audit_events')
        .select(['detail'])
        .where('event', '=', 'login_succeeded')
        .where('session_id', '=', sessionOf(pair.access_token).sid)
        .executeTakeFirstOrThrow()
      // The device's session carries the approving session's methods (README, "Second factors").
      expect(JSON.parse(event.detail!)).toEqual({ method: 'device', amr: 'pwd' })
      const approval = await tessera()
        .db.selectFrom('audit_events')
        .select(['detail', 'ip', 'session_id'])
        .where('event', '=', 'device_approved')
        .where('user_id', '=', owner.user.id)
        .executeTakeFirstOrThrow()
      expect(approval.session_id).toBe(sessionOf(owner.tokens.access_token).sid)
      expect(JSON.parse(approval.detail!)).toEqual({
        client_id: CLI_CLIENT,
        device_ip: '127.0.0.1',
      })
      // Spent: the same device code again, later, is invalid_grant.
      app.clock.advance(5_000)
      await expectOAuthError(await poll(app, device_code), 'invalid_grant')
      // The refresh token works like any other.
      const refreshed = await app.request('/v1/user/auth/refresh', {
        json: { refresh_token: pair.refresh_token },
      })
      expect(refreshed.status).toBe(200)
    })

    it('N polls racing after approval give exactly one token pair', async () => {
      const { device_code, user_code } = await startDevice(app)
      const owner = await registerAndLogin(app)
      await approveAs(tessera(), owner.tokens.access_token, user_code)
      const answers = await Promise.all(Array.from({ length: 12 }, () => poll(app, device_code)))
      const bodies = await Promise.all(
        answers.map((r) => r.json() as Promise<Record<string, unknown>>),
      )
      const pairs = bodies.filter(
        (b) => typeof b.refresh_token === 'string',
      ) as unknown as TokenPairBody[]
      expect(answers.filter((r) => r.status === 200)).toHaveLength(1)
      expect(new Set(pairs.map((p) => p.refresh_token)).size).toBe(1)
      expect(bodies.filter((b) => b.error === 'invalid_grant')).toHaveLength(11)
      const sessions = await tessera()
        .db.selectFrom('sessions')
        .select('id')
        .where('user_id', '=', owner.user.id)
        .execute()
      // The owner's own login and the device's one session.
      expect(sessions).toHaveLength(2)
    })

    it('deny: the device hears access_denied', async () => {
      const { device_code, user_code } = await startDevice(app)
      await denyAs(tessera(), (await approver()).access_token, user_code)
      await expectOAuthError(await poll(app, device_code), 'access_denied')
      app.clock.advance(5_000)
      await expectOAuthError(await poll(app, device_code), 'access_denied')
    })

    it('a code is decided once', async () => {
      const first = await startDevice(app)
      const { access_token } = await approver()
      await denyAs(tessera(), access_token, first.user_code)
      expect(await codeOf(approveAs(tessera(), access_token, first.user_code))).toBe(
        'invalid_user_code',
      )
      const second = await startDevice(app)
      await approveAs(tessera(), access_token, second.user_code)
      expect(await codeOf(denyAs(tessera(), access_token, second.user_code))).toBe(
        'invalid_user_code',
      )
      expect(await codeOf(approveAs(tessera(), access_token, second.user_code))).toBe(
        'invalid_user_code',
      )
    })

    it("another client's device code is invalid_grant; garbage and unknown codes too", async () => {
      const { device_code, user_code } = await startDevice(app)
      await approveAs(tessera(), (await approver()).access_token, user_code)
      await expectOAuthError(await poll(app, device_code, OTHER_CLIENT), 'invalid_grant')
      await expectOAuthError(await poll(app, `tessera_dc_${'A'.repeat(43)}`), 'invalid_grant')
      await expectOAuthError(await poll(app, 'not a code'), 'invalid_grant')
      // Still redeemable by its own client.
      expect((await poll(app, device_code)).status).toBe(200)
    })

    it('user codes are typed ignoring case, dashes and spaces; wrong ones refused', async () => {
      const { user_code } = await startDevice(app)
      const { sid } = sessionOf((await approver()).access_token)
      const entry = { sessionId: sid, ip: '198.51.100.7' }
      const letters = user_code.replace('-', '')
      for (const typed of [
        user_code,
        user_code.toLowerCase(),
        letters,
        ` ${letters.slice(0, 4)} ${letters.slice(4)} `,
      ]) {
        expect((await describeUserCode(tessera(), entry, typed)).clientId).toBe(CLI_CLIENT)
      }
      // A neighbour of the right code, vowels, digits, too short, too long, Unicode look-alikes.
      const neighbour = letters.slice(0, 7) + (letters[7] === 'B' ? 'C' : 'B')
      for (const typed of [
        neighbour,
        'AEIOUAEI',
        '12345678',
        letters.slice(0, 7),
        `${letters}B`,
        'ſ'.repeat(8),
        '',
      ]) {
        expect(await codeOf(describeUserCode(tessera(), entry, typed))).toBe('invalid_user_code')
      }
    })

    it('approving needs a recent authentication of the deciding session', async () => {
      const { device_code, user_code } = await startDevice(app)
      const { access_token } = await approver()
      app.clock.advance(301_000)
      expect(await codeOf(approveAs(tessera(), access_token, user_code))).toBe(
        'reauthentication_required',
      )
      await expectOAuthError(await poll(app, device_code), 'authorization_pending')
      // Denying stays possible.
      await denyAs(tessera(), access_token, user_code)
    })

    it('an ended session cannot decide; a disabled account gets no device session', async () => {
      const ended = await startDevice(app)
      const loggedOut = await registerAndLogin(app)
      await app.request('/v1/user/auth/logout', {
        json: { refresh_token: loggedOut.tokens.refresh_token },
      })
      expect(
        await codeOf(approveAs(tessera(), loggedOut.tokens.access_token, ended.user_code)),
      ).toBe('unauthorized')
      await expectOAuthError(await poll(app, ended.device_code), 'authorization_pending')

      const approved = await startDevice(app)
      const owner = await registerAndLogin(app)
      await approveAs(tessera(), owner.tokens.access_token, approved.user_code)
      await setDisabled(tessera(), owner.user.id, true)
      await expectOAuthError(await poll(app, approved.device_code), 'access_denied')
    })

    it('bad requests: unsupported_grant_type, invalid_request, 415, 413', async () => {
      await expectOAuthError(
        await postForm(app, '/v1/oauth/token', { grant_type: 'password', client_id: CLI_CLIENT }),
        'unsupported_grant_type',
      )
      await expectOAuthError(
        await postForm(app, '/v1/oauth/token', { grant_type: DEVICE_GRANT, client_id: CLI_CLIENT }),
        'invalid_request',
      )
      await expectOAuthError(
        await postForm(app, '/v1/oauth/token', { grant_type: DEVICE_GRANT, device_code: 'x' }),
        'invalid_request',
      )
      await expectOAuthError(
        await postForm(app, '/v1/oauth/device_authorization', {}),
        'invalid_request',
      )
      // A parameter given twice (RFC 6749 §3.2).
      const twice = await app.request('/v1/oauth/device_authorization', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'client_id=tessera-cli&client_id=platform-sync',
      })
      expect((await expectOAuthError(twice, 'invalid_request')).code).toBe('validation_failed')
      const wrongType = await app.request('/v1/oauth/token', {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'grant_type=x',
      })
      expect((await expectOAuthError(wrongType, 'invalid_request', 415)).code).toBe(
        'unsupported_media_type',
      )
      const tooLarge = await app.request('/v1/oauth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=${'x'.repeat(70_000)}`,
      })
      expect((await expectOAuthError(tooLarge, 'invalid_request', 413)).code).toBe(
        'payload_too_large',
      )
    })
  })

  describe(`device authorization limits [${dialect}]`, () => {
    let app: TestApp

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_OAUTH_PER_IP: '2',
          RATE_LIMIT_USER_CODE_PER_SESSION: '3',
          RATE_LIMIT_USER_CODE_PER_IP: '5',
          // The limiter counts in real time, not the test clock: each test is its own address.
          TRUST_PROXY: '127.0.0.1',
        },
      })
    })
    afterAll(() => app?.close())

    it('device authorization requests are limited per address', async () => {
      await startDevice(app)
      await startDevice(app)
      const limited = await postForm(app, '/v1/oauth/device_authorization', {
        client_id: CLI_CLIENT,
      })
      const body = await expectOAuthError(limited, 'temporarily_unavailable', 429)
      expect(body.code).toBe('rate_limited')
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    })

    it('wrong user codes count per session and per address; right ones do not', async () => {
      const device = { 'x-forwarded-for': '203.0.113.9' }
      const first = await startDevice(app, CLI_CLIENT, device)
      const second = await startDevice(app, CLI_CLIENT, device)
      const { access_token } = (await registerAndLogin(app)).tokens
      const { sid } = sessionOf(access_token)
      const entry = { sessionId: sid, ip: '198.51.100.20' }
      // Right entries, as often as anyone likes.
      for (let i = 0; i < 6; i++) await describeUserCode(app.server.tessera, entry, first.user_code)
      // Three wrong ones use up the session's budget: then even the right code waits.
      for (let i = 0; i < 3; i++) {
        expect(await codeOf(describeUserCode(app.server.tessera, entry, 'BBBBBBBB'))).toBe(
          'invalid_user_code',
        )
      }
      expect(await codeOf(describeUserCode(app.server.tessera, entry, first.user_code))).toBe(
        'rate_limited',
      )
      expect(
        await codeOf(approveAs(app.server.tessera, access_token, first.user_code, entry.ip)),
      ).toBe('rate_limited')
      // Another session from the same address has its own budget, until the address's (5) is used.
      const other = sessionOf((await registerAndLogin(app)).tokens.access_token).sid
      const sameAddress = { sessionId: other, ip: entry.ip }
      await describeUserCode(app.server.tessera, sameAddress, second.user_code)
      for (let i = 0; i < 2; i++) {
        expect(await codeOf(describeUserCode(app.server.tessera, sameAddress, 'CCCCCCCC'))).toBe(
          'invalid_user_code',
        )
      }
      expect(
        await codeOf(describeUserCode(app.server.tessera, sameAddress, second.user_code)),
      ).toBe('rate_limited')
      // Elsewhere, the same session's neighbour is unaffected.
      const elsewhere = { sessionId: other, ip: '198.51.100.21' }
      expect(await codeOf(describeUserCode(app.server.tessera, elsewhere, second.user_code))).toBe(
        'no error',
      )
    })

    it('an IPv6 address counts by its /64 prefix', async () => {
      const started = await startDevice(app, CLI_CLIENT, { 'x-forwarded-for': '203.0.113.10' })
      const session = async () => sessionOf((await registerAndLogin(app)).tokens.access_token).sid
      const tessera = app.server.tessera
      const first = { sessionId: await session(), ip: '2001:db8:1:2::10' }
      const second = { sessionId: await session(), ip: '2001:db8:1:2:ffff::20' }
      for (let i = 0; i < 3; i++) {
        expect(await codeOf(describeUserCode(tessera, first, 'DDDDDDDD'))).toBe('invalid_user_code')
      }
      for (let i = 0; i < 2; i++) {
        expect(await codeOf(describeUserCode(tessera, second, 'FFFFFFFF'))).toBe(
          'invalid_user_code',
        )
      }
      expect(await codeOf(describeUserCode(tessera, second, started.user_code))).toBe(
        'rate_limited',
      )
      const otherPrefix = { sessionId: second.sessionId, ip: '2001:db8:1:3::20' }
      expect(await codeOf(describeUserCode(tessera, otherPrefix, started.user_code))).toBe(
        'no error',
      )
    })
  })
}
