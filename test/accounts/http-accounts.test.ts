import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { createPasswordHasher } from '../../src/accounts/password-hasher.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  register,
  registerAndLogin,
  type TokenPairBody,
  uniqueEmail,
} from '../support/users.js'

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/
const SERVICE_SECRET = 'service-secret-0123456789abcdef'

interface ProblemBody {
  code: string
  detail: string
  errors?: Array<{ field: string; message: string }>
}

function postRegister(app: TestApp, body: unknown): Promise<Response> {
  return app.request('/v1/user/auth/register', { json: body })
}

function postLogin(app: TestApp, email: string, password: string): Promise<Response> {
  return app.request('/v1/user/auth/login', { json: { email, password } })
}

async function storedHash(app: TestApp, userId: string): Promise<string | null> {
  const row = await app.server.tessera.db
    .selectFrom('users')
    .select('password_hash')
    .where('id', '=', userId)
    .executeTakeFirstOrThrow()
  return row.password_hash
}

/** `n` distinct astral code points (two UTF-16 units each), none repeated next to each other. */
function astral(n: number): string {
  return Array.from({ length: n }, (_, i) => String.fromCodePoint(0x1f600 + (i % 64))).join('')
}

/** Headers that must not differ between two answers of the same kind. */
function stableHeaders(res: Response): Record<string, string> {
  const out: Record<string, string> = {}
  res.headers.forEach((value, name) => {
    if (name !== 'date' && name !== 'x-request-id') out[name] = value
  })
  return out
}

for (const dialect of dialects()) {
  describe(`registration over HTTP [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      // Many registrations from one address: the per-IP registration limit is tested elsewhere.
      // Real argon2 cost: this block checks the stored hash's parameters.
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_REGISTER_PER_IP: '0' },
        realHashing: true,
      })
    })
    afterAll(() => app.close())

    it('answers 201 with exactly the user object', async () => {
      // Email trimmed but as typed, regular, unverified.
      const email = `  Mixed.${randomUUID()}@Example.ORG `
      const res = await postRegister(app, {
        email,
        password: PASSWORD,
        display_name: '  Ada Lovelace ',
      })
      expect(res.status, await res.clone().text()).toBe(201)
      expect(res.headers.get('content-type')).toMatch(/^application\/json/)
      const body = (await res.json()) as Record<string, unknown>
      expect(Object.keys(body).sort()).toEqual(
        [
          'account_type',
          'created_at',
          'display_name',
          'email',
          'email_verified',
          'id',
          'verified',
        ].sort(),
      )
      expect(body).toEqual({
        id: expect.any(String),
        email: email.trim(),
        display_name: 'Ada Lovelace',
        account_type: 'regular',
        verified: false,
        email_verified: false,
        created_at: expect.stringMatching(RFC3339_UTC),
      })
      expect(Date.parse(body.created_at as string)).toBe(Math.floor(app.clock() / 1000) * 1000)
      // The stored row keeps the typed form and a lower-cased key; never the password itself.
      const row = await app.server.tessera.db
        .selectFrom('users')
        .selectAll()
        .where('id', '=', body.id as string)
        .executeTakeFirstOrThrow()
      expect(row.email).toBe(email.trim())
      expect(row.email_normalized).toBe(email.trim().toLowerCase())
      expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
      expect(row.password_hash).not.toContain(PASSWORD)
    })

    it('display_name is optional and null when absent', async () => {
      const res = await postRegister(app, { email: uniqueEmail(), password: PASSWORD })
      expect(res.status).toBe(201)
      expect(((await res.json()) as { display_name: unknown }).display_name).toBeNull()
    })

    const invalidBodies: Array<[string, unknown, string]> = [
      ['missing email', { password: PASSWORD }, 'email'],
      ['empty email', { email: '', password: PASSWORD }, 'email'],
      ['blank email', { email: '   ', password: PASSWORD }, 'email'],
      ['email without @', { email: 'not-an-email', password: PASSWORD }, 'email'],
      ['email with two @', { email: 'a@b@example.org', password: PASSWORD }, 'email'],
      ['email as a number', { email: 42, password: PASSWORD }, 'email'],
      [
        'email over 254 characters',
        { email: `${'a'.repeat(250)}@example.org`, password: PASSWORD },
        'email',
      ],
      ['missing password', { email: 'x@example.org' }, 'password'],
      ['password as a number', { email: 'x@example.org', password: 12345678901 }, 'password'],
      [
        'password as an array',
        { email: 'x@example.org', password: ['a-long-password'] },
        'password',
      ],
      ['password null', { email: 'x@example.org', password: null }, 'password'],
      [
        'display_name over 100 characters',
        { email: 'x@example.org', password: PASSWORD, display_name: 'n'.repeat(101) },
        'display_name',
      ],
      [
        'display_name as a number',
        { email: 'x@example.org', password: PASSWORD, display_name: 7 },
        'display_name',
      ],
    ]
    for (const [name, body, field] of invalidBodies) {
      it(`validation_failed names the field: ${name}`, async () => {
        const problem = (await expectProblem(
          await postRegister(app, body),
          400,
          'validation_failed',
        )) as ProblemBody
        expect(problem.errors?.map((e) => e.field)).toContain(field)
        expect(problem.detail).toContain(field)
      })
    }

    it('validation_failed for a body that is not a JSON object or not JSON', async () => {
      for (const body of [[], 'text', 42, null]) {
        await expectProblem(await postRegister(app, body), 400, 'validation_failed')
      }
      const res = await app.request('/v1/user/auth/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"email": ',
      })
      await expectProblem(res, 400, 'validation_failed')
    })

    it('a body over 64 KiB is 413 and a non-JSON content type is 415', async () => {
      // Nothing is created.
      const email = uniqueEmail('big')
      const big = await postRegister(app, {
        email,
        password: PASSWORD,
        padding: 'x'.repeat(70 * 1024),
      })
      expect(big.status).toBe(413)
      expect(big.headers.get('content-type')).toBe('application/problem+json')
      const form = await app.request('/v1/user/auth/register', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ email, password: PASSWORD }).toString(),
      })
      expect(form.status).toBe(415)
      const rows = await app.server.tessera.db
        .selectFrom('users')
        .select('id')
        .where('email_normalized', '=', email.toLowerCase())
        .execute()
      expect(rows).toHaveLength(0)
    })

    const weakPasswords: Array<[string, string, RegExp]> = [
      ['seven characters', 'abc-def', /too short/i],
      ['seven astral code points (14 UTF-16 units)', astral(7), /too short/i],
      ['"password", on the common list', 'password', /common/i],
      ['"Password1", on the list whatever the case', 'Password1', /common/i],
      ['"iloveyou", on the common list', 'iloveyou', /common/i],
      ['one character repeated', 'zzzzzzzzzzzz', /repeated/i],
      ['1025 code points', `${'ab'.repeat(512)}c`, /too long/i],
      ['1025 astral code points', astral(1025), /too long/i],
    ]
    for (const [name, password, why] of weakPasswords) {
      it(`weak_password says why: ${name}`, async () => {
        const problem = await expectProblem(
          await postRegister(app, { email: uniqueEmail('weak'), password }),
          400,
          'weak_password',
        )
        expect(problem.detail).toMatch(why)
        // The reason never echoes the password ("password" itself is a word of every reason).
        if (!/password/i.test(password)) expect(problem.detail).not.toContain(password)
      })
    }

    it('length is counted in code points', async () => {
      // 8 astral and 1024 astral code points are accepted.
      for (const password of [astral(8), astral(1024)]) {
        const email = uniqueEmail('long')
        const res = await postRegister(app, { email, password })
        expect(res.status, await res.clone().text()).toBe(201)
        expect((await postLogin(app, email, password)).status).toBe(200)
      }
    })

    it('no composition rules: a long lower-case passphrase is accepted', async () => {
      const res = await postRegister(app, {
        email: uniqueEmail(),
        password: 'correct horse battery staple',
      })
      expect(res.status).toBe(201)
    })

    it('email_taken for the same address in another case and with spaces', async () => {
      const local = `alice.${randomUUID()}`
      await register(app, `${local}@example.org`)
      for (const variant of [` ${local.toUpperCase()}@EXAMPLE.org `, `${local}@Example.Org`]) {
        const problem = await expectProblem(
          await postRegister(app, { email: variant, password: 'another-fine-passphrase' }),
          409,
          'email_taken',
        )
        expect(problem.detail).not.toContain('another-fine-passphrase')
      }
      const rows = await app.server.tessera.db
        .selectFrom('users')
        .select('id')
        .where('email_normalized', '=', `${local}@example.org`)
        .execute()
      expect(rows).toHaveLength(1)
    })
  })

  describe(`password login over HTTP [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      // Real argon2 cost: the timing oracle and rehash tests are about hashing.
      app = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
        },
        realHashing: true,
      })
    })
    afterAll(() => app.close())

    it('logs in with the address in any case and with surrounding spaces', async () => {
      const email = uniqueEmail('Case')
      await register(app, email)
      for (const typed of [email, email.toUpperCase(), `  ${email.toLowerCase()}\t`]) {
        const pair = await login(app, typed)
        expect(pair.token_type).toBe('Bearer')
      }
    })

    it('invalid_credentials: byte-identical for unknown email and wrong password', async () => {
      const { email } = await register(app)
      const unknown = await postLogin(app, uniqueEmail('nobody'), PASSWORD)
      const wrong = await postLogin(app, email, `${PASSWORD}-wrong`)
      expect(unknown.status).toBe(401)
      expect(wrong.status).toBe(401)
      const unknownText = await unknown.text()
      const wrongText = await wrong.text()
      expect(unknownText).toBe(wrongText)
      expect(JSON.parse(unknownText)).toMatchObject({ code: 'invalid_credentials', status: 401 })
      expect(stableHeaders(unknown)).toEqual(stableHeaders(wrong))
    })

    it('a malformed address answers like an unknown one, not validation_failed', async () => {
      const { email } = await register(app)
      const wrong = await (await postLogin(app, email, 'not-the-password')).text()
      for (const typed of ['not-an-email', 'a@b@c', '@']) {
        const res = await postLogin(app, typed, 'not-the-password')
        expect(res.status).toBe(401)
        expect(await res.text()).toBe(wrong)
      }
    })

    it('an unknown email costs a password verification too (no timing oracle)', async () => {
      // Seen without a clock: with one hashing slot and no queue, logins for unknown addresses
      // sent at once compete for the slot, so some are refused for want of it; an unknown address
      // that skipped the dummy verify would always answer 401 (timing is the bench's business).
      const narrow = await makeTestApp({
        dialect,
        env: {
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
          ARGON2_MAX_CONCURRENCY: '1',
          ARGON2_MAX_QUEUE: '0',
        },
        realHashing: true,
      })
      try {
        const answers = await Promise.all(
          Array.from({ length: 6 }, () => postLogin(narrow, uniqueEmail('ghost'), 'not-it')),
        )
        const statuses = answers.map((res) => res.status)
        expect(statuses).toContain(401)
        expect(statuses.some((status) => status !== 401)).toBe(true)
      } finally {
        await narrow.close()
      }
    })

    it('a federated-only account is invalid_credentials like an unknown email', async () => {
      // It has no password.
      const email = uniqueEmail('federated')
      const now = app.clock()
      await app.server.tessera.db
        .insertInto('users')
        .values({
          id: randomUUID(),
          email,
          email_normalized: email.toLowerCase(),
          password_hash: null,
          display_name: null,
          account_type: 'regular',
          verified: 1,
          disabled: 0,
          role: null,
          created_at: now,
          updated_at: now,
        })
        .execute()
      const federated = await postLogin(app, email, PASSWORD)
      const unknown = await postLogin(app, uniqueEmail('nobody'), PASSWORD)
      expect(federated.status).toBe(401)
      expect(await federated.text()).toBe(await unknown.text())
      // Nor may the empty hash be matched by an empty-looking password.
      await expectProblem(await postLogin(app, email, ' '), 401, 'invalid_credentials')
    })

    it('a password over 1024 code points is invalid_credentials, not matched', async () => {
      const { email } = await register(app)
      await expectProblem(
        await postLogin(app, email, PASSWORD + 'x'.repeat(1100)),
        401,
        'invalid_credentials',
      )
    })

    it('no case folding and no truncation of passwords', async () => {
      const email = uniqueEmail()
      const password = `Tall-Orchard-${'q7'.repeat(60)}`
      await register(app, email, password)
      await expectProblem(
        await postLogin(app, email, password.toLowerCase()),
        401,
        'invalid_credentials',
      )
      await expectProblem(
        await postLogin(app, email, password.toUpperCase()),
        401,
        'invalid_credentials',
      )
      await expectProblem(
        await postLogin(app, email, password.slice(0, 72)),
        401,
        'invalid_credentials',
      )
      await expectProblem(await postLogin(app, email, `${password}q`), 401, 'invalid_credentials')
      expect((await postLogin(app, email, password)).status).toBe(200)
    })

    it('passwords are NFKC-normalised', async () => {
      // A ligature/fullwidth password logs in with its NFKC form and back.
      const typed = 'ﬁne-ﬂute-Ｏｒｂｉｔ-４２' // ligatures fi, fl; fullwidth letters and digits
      const nfkc = typed.normalize('NFKC')
      expect(nfkc).toBe('fine-flute-Orbit-42')
      const email = uniqueEmail('nfkc')
      const res = await postRegister(app, { email, password: typed })
      expect(res.status, await res.clone().text()).toBe(201)
      expect((await postLogin(app, email, nfkc)).status).toBe(200)
      expect((await postLogin(app, email, typed)).status).toBe(200)
      // Decomposed and composed accents are the same password too.
      const email2 = uniqueEmail('nfkc')
      await register(app, email2, 'cafe\u0301-au-lait-42')
      expect((await postLogin(app, email2, 'caf\u00e9-au-lait-42')).status).toBe(200)
    })

    it('rehashes on login a hash with older parameters (t=1 becomes t=2)', async () => {
      const { email, user } = await register(app)
      const weakHasher = createPasswordHasher(
        { memoryKiB: 19456, timeCost: 1, parallelism: 1 },
        { maxConcurrent: 1, maxQueued: 1 },
      )
      const old = await weakHasher.hash(PASSWORD)
      expect(old).toContain('m=19456,t=1,p=1')
      await app.server.tessera.db
        .updateTable('users')
        .set({ password_hash: old })
        .where('id', '=', user.id)
        .execute()

      // A wrong password does not touch the stored hash.
      await expectProblem(
        await postLogin(app, email, 'not-the-password'),
        401,
        'invalid_credentials',
      )
      expect(await storedHash(app, user.id)).toBe(old)

      await login(app, email)
      const upgraded = await storedHash(app, user.id)
      expect(upgraded).not.toBe(old)
      expect(upgraded).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
      // The upgraded hash still verifies the same password; a current hash is left alone.
      await login(app, email)
      expect(await storedHash(app, user.id)).toBe(upgraded)
    })

    it('account_disabled only for the right password; disabling ends every session', async () => {
      const { email, user, tokens } = await registerAndLogin(app)
      const second = await login(app, email)
      await setDisabled(app.server.tessera, user.id, true)

      await expectProblem(await postLogin(app, email, PASSWORD), 403, 'account_disabled')
      // Without the password a disabled account looks like any other failed login.
      const wrong = await postLogin(app, email, 'not-the-password')
      const unknown = await postLogin(app, uniqueEmail('nobody'), 'not-the-password')
      expect(wrong.status).toBe(401)
      expect(await wrong.text()).toBe(await unknown.text())

      for (const pair of [tokens, second]) {
        await expectProblem(await refresh(app, pair.refresh_token), 401, 'invalid_refresh_token')
        await expectProblem(
          await app.request('/v1/user/me', { token: pair.access_token }),
          401,
          'unauthorized',
        )
      }
      const sessions = await app.server.tessera.db
        .selectFrom('sessions')
        .select('revoked_reason')
        .where('user_id', '=', user.id)
        .execute()
      expect(sessions.map((s) => s.revoked_reason)).toEqual(['user_disabled', 'user_disabled'])

      await setDisabled(app.server.tessera, user.id, false)
      expect((await postLogin(app, email, PASSWORD)).status).toBe(200)
    })

    it('a token pair has the documented shape', async () => {
      const { tokens } = await registerAndLogin(app)
      expect(Object.keys(tokens).sort()).toEqual(
        ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type'].sort(),
      )
      expect(tokens.expires_in).toBe(900)
      expect(tokens.refresh_expires_in).toBe(2_592_000)
    })
  })

  describe(`register-service without SERVICE_SECRET [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    it('the endpoint answers 404 not_found, whatever header is sent', async () => {
      const variants: Array<Record<string, string>> = [
        {},
        { 'x-service-secret': SERVICE_SECRET },
        { 'x-service-secret': '' },
      ]
      for (const headers of variants) {
        const res = await app.request('/v1/user/auth/register-service', {
          json: { email: uniqueEmail('svc'), password: PASSWORD },
          headers,
        })
        await expectProblem(res, 404, 'not_found')
      }
      const rows = await app.server.tessera.db.selectFrom('users').select('id').execute()
      expect(rows).toHaveLength(0)
    })
  })

  describe(`register-service with SERVICE_SECRET [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { SERVICE_SECRET } })
    })
    afterAll(() => app.close())

    const registerService = (headers: Record<string, string>, email = uniqueEmail('svc')) =>
      app.request('/v1/user/auth/register-service', {
        json: { email, password: PASSWORD },
        headers,
      })

    const badSecrets: Array<[string, Record<string, string>]> = [
      ['missing header', {}],
      ['empty header', { 'x-service-secret': '' }],
      [
        'wrong secret of the same length',
        { 'x-service-secret': SERVICE_SECRET.replace(/.$/, 'X') },
      ],
      ['wrong secret, shorter', { 'x-service-secret': 'short' }],
      ['wrong secret, longer', { 'x-service-secret': SERVICE_SECRET + SERVICE_SECRET }],
      ['the secret in another case', { 'x-service-secret': SERVICE_SECRET.toUpperCase() }],
      ['a prefix of the secret', { 'x-service-secret': SERVICE_SECRET.slice(0, -1) }],
    ]
    for (const [name, headers] of badSecrets) {
      it(`invalid_service_secret (403, never 500): ${name}`, async () => {
        const email = uniqueEmail('svc')
        const problem = await expectProblem(
          await registerService(headers, email),
          403,
          'invalid_service_secret',
        )
        expect(problem.detail).not.toContain(SERVICE_SECRET)
        const rows = await app.server.tessera.db
          .selectFrom('users')
          .select('id')
          .where('email_normalized', '=', email.toLowerCase())
          .execute()
        expect(rows).toHaveLength(0)
      })
    }

    it('the right secret creates a verified service account that can log in', async () => {
      const email = uniqueEmail('svc')
      const res = await registerService({ 'x-service-secret': SERVICE_SECRET }, email)
      expect(res.status, await res.clone().text()).toBe(201)
      expect(await res.json()).toEqual({
        id: expect.any(String),
        email,
        display_name: null,
        account_type: 'service',
        verified: true,
        email_verified: false,
        created_at: expect.stringMatching(RFC3339_UTC),
      })
      const pair = (await (await postLogin(app, email, PASSWORD)).json()) as TokenPairBody
      const me = await app.request('/v1/user/me', { token: pair.access_token })
      expect(await me.json()).toMatchObject({ email, account_type: 'service', verified: true })
    })

    it('the service route validates and checks the password policy like registration', async () => {
      const ok = { 'x-service-secret': SERVICE_SECRET }
      let res = await app.request('/v1/user/auth/register-service', {
        json: { email: 'nope', password: PASSWORD },
        headers: ok,
      })
      await expectProblem(res, 400, 'validation_failed')
      res = await app.request('/v1/user/auth/register-service', {
        json: { email: uniqueEmail('svc'), password: 'password' },
        headers: ok,
      })
      await expectProblem(res, 400, 'weak_password')
      const { email } = await register(app)
      res = await app.request('/v1/user/auth/register-service', {
        json: { email, password: PASSWORD },
        headers: ok,
      })
      await expectProblem(res, 409, 'email_taken')
    })
  })
}
