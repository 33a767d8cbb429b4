/**
 * Device cookies (README, "Passwords and login"): failed logins from anywhere must not lock the
 * owner out. A client that logged in with the password before keeps a budget of its own; every
 * other client shares the account's budget, so guessing stays as expensive as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { enrolTotp, mfaTicketOf } from '../support/mfa.js'
import {
  expectProblem,
  PASSWORD,
  register,
  type TokenPairBody,
  uniqueEmail,
} from '../support/users.js'

const LIMIT = 3

let ipCounter = 0
/** A fresh client address (TEST-NET-2) per attempt: the attacker has a botnet. */
function freshIp(): string {
  ipCounter += 1
  return `198.51.100.${ipCounter % 250}`
}

/** The `tessera_device` cookie a response sets, with its attributes, or undefined. */
function deviceSetCookie(res: Response): string | undefined {
  return res.headers.getSetCookie().find((c) => c.startsWith('tessera_device='))
}

function cookieValue(setCookie: string): string {
  return setCookie.split(';')[0]!.slice('tessera_device='.length)
}

for (const dialect of dialects()) {
  // They keep the owner's login working during a guessing attack.
  describe(`device cookies [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: {
          // Every request comes through "the proxy" on 127.0.0.1, so X-Forwarded-For is the client.
          TRUST_PROXY: '127.0.0.1',
          TESSERA_ISSUER: 'https://id.example.org',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: String(LIMIT),
          RATE_LIMIT_LOGIN_PER_DEVICE: String(LIMIT),
          RATE_LIMIT_LOGIN_PER_IP: '1000',
          RATE_LIMIT_REGISTER_PER_IP: '0',
        },
      })
    })
    afterAll(() => app.close())

    const attempt = (
      email: string,
      password: string,
      device?: string,
      path = '/v1/user/auth/login',
    ) =>
      app.request(path, {
        json: { email, password },
        headers: {
          'x-forwarded-for': freshIp(),
          ...(device === undefined ? {} : { cookie: `tessera_device=${device}` }),
        },
      })

    /** Exhausts the account's shared budget with wrong passwords, one address per guess. */
    async function attack(email: string) {
      for (let i = 0; i < LIMIT; i++) {
        await expectProblem(await attempt(email, `attacker-guess-${i}`), 401, 'invalid_credentials')
      }
    }

    /** Registers an account and logs in once with its password: the owner's device cookie. */
    async function ownerWithDevice() {
      const { email, user } = await register(app)
      const res = await attempt(email, PASSWORD)
      expect(res.status).toBe(200)
      const setCookie = deviceSetCookie(res)
      expect(setCookie).toBeDefined()
      const tokens = (await res.json()) as TokenPairBody
      return { email, user, device: cookieValue(setCookie!), tokens }
    }

    it('a password login sets a long-lived device cookie', async () => {
      // HttpOnly, Secure, SameSite=Strict, for every login path.
      const { email } = await register(app)
      for (const path of ['/v1/user/auth/login', '/api/v1/auth/login']) {
        const setCookie = deviceSetCookie(await attempt(email, PASSWORD, undefined, path))
        expect(setCookie).toMatch(/^tessera_device=tessera_dev_[A-Za-z0-9_-]{43};/)
        expect(setCookie).toContain('Path=/;')
        expect(setCookie).toMatch(/Max-Age=31536000/)
        expect(setCookie).toContain('HttpOnly')
        expect(setCookie).toContain('Secure')
        expect(setCookie).toContain('SameSite=Strict')
      }
      // Only its hash is stored.
      const rows = await app.server.tessera.db
        .selectFrom('login_devices')
        .select('token_hash')
        .execute()
      expect(rows.length).toBeGreaterThanOrEqual(2)
      for (const row of rows) expect(row.token_hash).not.toMatch(/^tessera_dev_/)
    })

    it('when others exhaust the account budget, the owner still logs in', async () => {
      // A client without a device cookie gets 429.
      const owner = await ownerWithDevice()
      await attack(owner.email)
      await expectProblem(await attempt(owner.email, PASSWORD), 429, 'rate_limited')
      const res = await attempt(owner.email, PASSWORD, owner.device)
      expect(res.status, await res.clone().text()).toBe(200)
      // A known device keeps its cookie, set again with a renewed lifetime.
      expect(cookieValue(deviceSetCookie(res)!)).toBe(owner.device)
      // The owner's login does not clear the shared count (that would refill the attacker's
      // budget).
      await expectProblem(await attempt(owner.email, PASSWORD), 429, 'rate_limited')
      // Through the archive's login path too.
      expect(
        (await attempt(owner.email, PASSWORD, owner.device, '/api/v1/auth/login')).status,
      ).toBe(200)
    })

    it('an unknown, malformed or foreign device cookie has no budget', async () => {
      const owner = await ownerWithDevice()
      const attacker = await ownerWithDevice()
      await attack(owner.email)
      const forged = `tessera_dev_${'A'.repeat(43)}`
      for (const device of [attacker.device, forged, 'garbage', `${owner.device}x`]) {
        await expectProblem(
          await attempt(owner.email, 'attacker-guess-again', device),
          429,
          'rate_limited',
        )
        await expectProblem(await attempt(owner.email, PASSWORD, device), 429, 'rate_limited')
      }
      // The attacker's own device is still good for the attacker's account.
      expect((await attempt(attacker.email, PASSWORD, attacker.device)).status).toBe(200)
    })

    it('a device has its own budget', async () => {
      // After its failures it is locked for the window, other clients are not.
      const owner = await ownerWithDevice()
      const second = cookieValue(deviceSetCookie(await attempt(owner.email, PASSWORD))!)
      for (let i = 0; i < LIMIT; i++) {
        await expectProblem(
          await attempt(owner.email, `stolen-device-guess-${i}`, owner.device),
          401,
          'invalid_credentials',
        )
      }
      await expectProblem(await attempt(owner.email, PASSWORD, owner.device), 429, 'rate_limited')
      // The device's failures did not use up the shared budget or the owner's other device.
      expect((await attempt(owner.email, PASSWORD, second)).status).toBe(200)
      expect((await attempt(owner.email, PASSWORD)).status).toBe(200)
    })

    it('changing the password still works while logins are being flooded', async () => {
      const { email } = await register(app)
      const owner = {
        email,
        tokens: (await (await attempt(email, PASSWORD)).json()) as TokenPairBody,
      }
      await attack(owner.email)
      await expectProblem(await attempt(owner.email, PASSWORD), 429, 'rate_limited')
      const res = await app.request('/v1/user/password', {
        token: owner.tokens.access_token,
        json: { current_password: PASSWORD, new_password: 'another plausible lantern 77' },
      })
      expect(res.status, await res.clone().text()).toBe(204)
    })

    it('password change has its own per-user budget of wrong current passwords', async () => {
      const owner = await ownerWithDevice()
      const change = (current: string) =>
        app.request('/v1/user/password', {
          token: owner.tokens.access_token,
          json: { current_password: current, new_password: 'another plausible lantern 77' },
        })
      for (let i = 0; i < LIMIT; i++)
        await expectProblem(await change(`wrong-${i}-password`), 401, 'invalid_credentials')
      await expectProblem(await change(PASSWORD), 429, 'rate_limited')
      // Logins are a different budget.
      expect((await attempt(owner.email, PASSWORD)).status).toBe(200)
    })

    it('an expired device cookie falls back to the shared budget', async () => {
      const owner = await ownerWithDevice()
      await attack(owner.email)
      app.clock.advance(366 * 24 * 3600 * 1000)
      await expectProblem(await attempt(owner.email, PASSWORD, owner.device), 429, 'rate_limited')
    })

    it('an unknown email with a cookie is counted like any other attempt', async () => {
      const owner = await ownerWithDevice()
      const ghost = uniqueEmail('ghost')
      for (let i = 0; i < LIMIT; i++) {
        await expectProblem(
          await attempt(ghost, 'not-the-password', owner.device),
          401,
          'invalid_credentials',
        )
      }
      await expectProblem(
        await attempt(ghost, 'not-the-password', owner.device),
        429,
        'rate_limited',
      )
    })

    it('a device in use stays known: each login renews its year', async () => {
      const owner = await ownerWithDevice()
      app.clock.advance(300 * 86_400_000)
      expect((await attempt(owner.email, PASSWORD, owner.device)).status).toBe(200)
      // 400 days after it was issued, 100 after its last login: still the owner's own budget.
      app.clock.advance(100 * 86_400_000)
      await attack(owner.email)
      expect((await attempt(owner.email, PASSWORD, owner.device)).status).toBe(200)
    })

    it('with a second factor, mfa_required sets the cookie, and it has its budget', async () => {
      // No session is opened there, so the device is remembered on its own (login.ts).
      const owner = await ownerWithDevice()
      await enrolTotp(app, owner.tokens.access_token)
      const first = await attempt(owner.email, PASSWORD)
      const setCookie = deviceSetCookie(first)
      await mfaTicketOf(first)
      expect(setCookie).toMatch(/^tessera_device=tessera_dev_/)
      await attack(owner.email)
      // The new cookie, from an answer that opened no session, keeps the owner's own budget.
      await mfaTicketOf(await attempt(owner.email, PASSWORD, cookieValue(setCookie!)))
    })

    it('a login refused after its password check (disabled) remembers no device', async () => {
      const { email, user } = await register(app)
      await app.server.tessera.db
        .updateTable('users')
        .set({ disabled: 1 })
        .where('id', '=', user.id)
        .execute()
      await expectProblem(await attempt(email, PASSWORD), 403, 'account_disabled')
      const devices = await app.server.tessera.db
        .selectFrom('login_devices')
        .select('token_hash')
        .where('user_id', '=', user.id)
        .execute()
      expect(devices).toEqual([])
    })

    it('a password change forgets every device: old cookies lose their own budget', async () => {
      const owner = await ownerWithDevice()
      const newPassword = 'another plausible lantern 9'
      const changed = await app.request('/v1/user/password', {
        token: owner.tokens.access_token,
        json: { current_password: PASSWORD, new_password: newPassword },
      })
      expect(changed.status).toBe(204)
      await attack(owner.email)
      // Whoever kept the cookie from before the change shares the exhausted budget now.
      await expectProblem(
        await attempt(owner.email, newPassword, owner.device),
        429,
        'rate_limited',
      )
    })
  })
}
