/**
 * Signing keys: what `GET /v1/keys` publishes, the immediate rotation (`tessera keys rotate --now`
 * runs `rotateSigningKey`; the gradual one is test/keys/rotation.test.ts), the start-up race for
 * the first key, and encryption at rest.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Env, loadConfig } from '../../src/config/index.js'
import { connectDatabase } from '../../src/db/connect.js'
import { migrateOrThrow } from '../../src/db/migrate.js'
import { listSigningKeys, rotateSigningKey } from '../../src/keys/rotation.js'
import { ensureActiveKey, SIGNER_CACHE_MS } from '../../src/keys/signing-keys.js'
import { publicKeyId } from '../../src/paseto/paserk.js'
import { startServer } from '../../src/server.js'
import { makeTestApp, type TestApp, testClock } from '../support/app.js'
import { createTestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { requestTo } from '../support/http.js'
import { expectProblem, login, PASSWORD, registerAndLogin, uniqueEmail } from '../support/users.js'

interface PublishedKey {
  kid: string
  paserk: string
  status: 'active' | 'retiring'
  created_at: string
}

const ACCESS_TOKEN_TTL_MS = 900_000
/** Margin a retiring key stays published past TTL + signer cache (src/keys/signing-keys.ts). */
const SKEW_MARGIN_MS = 60_000

async function getKeys(app: { request: TestApp['request'] }): Promise<PublishedKey[]> {
  const res = await app.request('/v1/keys')
  expect(res.status).toBe(200)
  return ((await res.json()) as { keys: PublishedKey[] }).keys
}

function kidOf(token: string): string {
  const footer = token.split('.')[3]!
  return (JSON.parse(Buffer.from(footer, 'base64url').toString('utf8')) as { kid: string }).kid
}

async function expectMeStatus(app: TestApp, token: string, status: number) {
  const res = await app.request('/v1/user/me', { token })
  expect(res.status, await res.clone().text()).toBe(status)
  return res
}

/** A minimal client of a server started by hand (the restart tests). */
const client = (url: string) => ({ request: requestTo(url) })

const kek = () => randomBytes(32).toString('base64url')

for (const dialect of dialects()) {
  describe(`GET /v1/keys [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    it('lists the active key as {kid, paserk, status, created_at}, kid = PASERK id', async () => {
      const res = await app.request('/v1/keys')
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^application\/json/)
      const body = (await res.json()) as { keys: Record<string, unknown>[] }
      expect(Object.keys(body)).toEqual(['keys'])
      expect(body.keys).toHaveLength(1)
      const key = body.keys[0]!
      expect(Object.keys(key).sort()).toEqual(['created_at', 'kid', 'paserk', 'status'])
      expect(key.kid).toMatch(/^k4\.pid\.[A-Za-z0-9_-]{44}$/)
      expect(key.paserk).toMatch(/^k4\.public\.[A-Za-z0-9_-]{43}$/)
      expect(key.status).toBe('active')
      expect(key.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/)
      expect(publicKeyId(key.paserk as string)).toBe(key.kid)
    })

    it('is cacheable: Cache-Control public, max-age=300 by default', async () => {
      const res = await app.request('/v1/keys')
      expect(res.headers.get('cache-control')).toBe('public, max-age=300')
    })

    it('never publishes secret key material', async () => {
      const text = await (await app.request('/v1/keys')).text()
      expect(text).not.toContain('k4.secret')
      const row = await app.server.tessera.db
        .selectFrom('signing_keys')
        .selectAll()
        .executeTakeFirstOrThrow()
      expect(text).not.toContain(row.secret_key.slice('k4.secret.'.length))
    })

    it('the token from login names the published key in its footer', async () => {
      const { tokens } = await registerAndLogin(app)
      expect((await getKeys(app)).map((k) => k.kid)).toEqual([kidOf(tokens.access_token)])
    })
  })

  describe(`KEYS_MAX_AGE [${dialect}]`, () => {
    it('sets the max-age of GET /v1/keys', async () => {
      const app = await makeTestApp({ dialect, env: { KEYS_MAX_AGE: '60' } })
      try {
        expect((await app.request('/v1/keys')).headers.get('cache-control')).toBe(
          'public, max-age=60',
        )
      } finally {
        await app.close()
      }
    })
  })

  describe(`key rotation [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      // Without job tokens the longest token lifetime is ACCESS_TOKEN_TTL (test/tokens covers
      // the window with them).
      app = await makeTestApp({ dialect, env: { JOB_TOKEN_MAX_TTL: '0' } })
    })
    afterAll(() => app.close())

    it('new tokens carry the new kid, old ones verify; retired after TTL+cache+skew', async () => {
      const { tokens: before, email } = await registerAndLogin(app)
      const oldKid = kidOf(before.access_token)
      app.clock.advance(1000)
      const rotatedAt = app.clock()

      const { kid: newKid, retired } = await rotateSigningKey(app.server.tessera)
      expect(retired).toBe(oldKid)
      expect(newKid).not.toBe(oldKid)

      // Published at once: the new key active, the old one retiring.
      const published = await getKeys(app)
      expect(published.map((k) => [k.kid, k.status])).toEqual([
        [newKid, 'active'],
        [oldKid, 'retiring'],
      ])
      for (const key of published) expect(publicKeyId(key.paserk)).toBe(key.kid)

      // A token issued before the rotation still works.
      await expectMeStatus(app, before.access_token, 200)

      // Past the signer cache, new tokens are signed with the new key.
      app.clock.advance(SIGNER_CACHE_MS + 1000)
      const after = await login(app, email)
      expect(kidOf(after.access_token)).toBe(newKid)
      await expectMeStatus(app, after.access_token, 200)
      await expectMeStatus(app, before.access_token, 200)

      // The retiring key stays published for the whole window (README, "Keys": at least one TTL)...
      const retireAt = rotatedAt + ACCESS_TOKEN_TTL_MS + SIGNER_CACHE_MS + SKEW_MARGIN_MS
      app.clock.set(retireAt - 1000)
      expect((await getKeys(app)).map((k) => [k.kid, k.status])).toEqual([
        [newKid, 'active'],
        [oldKid, 'retiring'],
      ])

      // ...and not a moment after.
      app.clock.set(retireAt + 1000)
      expect((await getKeys(app)).map((k) => [k.kid, k.status])).toEqual([[newKid, 'active']])
      const info = await listSigningKeys(app.server.tessera, { all: true })
      expect(info.map((k) => [k.kid, k.status])).toEqual([
        [newKid, 'active'],
        [oldKid, 'retired'],
      ])
      // Retired for good in the table, and no longer in the default listing.
      const row = await app.server.tessera.db
        .selectFrom('signing_keys')
        .select('status')
        .where('kid', '=', oldKid)
        .executeTakeFirstOrThrow()
      expect(row.status).toBe('retired')
      expect((await listSigningKeys(app.server.tessera)).map((k) => k.kid)).toEqual([newKid])

      // The old token (expired by now as well) fails; its key is no longer one Tessera accepts.
      const res = await app.request('/v1/user/me', { token: before.access_token })
      expect(res.headers.get('www-authenticate')).toContain('unknown_key')
      await expectProblem(res, 401, 'unauthorized')

      // Logging in still works, with the new key.
      const fresh = await login(app, email)
      expect(kidOf(fresh.access_token)).toBe(newKid)
      await expectMeStatus(app, fresh.access_token, 200)
    })
  })

  describe(`retiring keys past their window are retired for good [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    /** `count` retiring keys whose window ended a day ago, written straight into the table. */
    async function insertExpiredRetiring(count: number, tag: string) {
      const db = app.server.tessera.db
      const now = app.clock()
      for (let start = 0; start < count; start += 1000) {
        const rows = Array.from({ length: Math.min(1000, count - start) }, (_, i) => ({
          kid: `k4.pid.${tag}-${start + i}`,
          public_paserk: 'k4.public.not-a-real-key',
          secret_key: 'k4.secret.not-a-real-key',
          status: 'retiring' as const,
          created_at: now - 30 * 86_400_000 + start + i,
          retire_after: now - 86_400_000,
        }))
        await db.insertInto('signing_keys').values(rows).execute()
      }
    }

    async function statusCounts() {
      const rows = await app.server.tessera.db
        .selectFrom('signing_keys')
        .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy('status')
        .execute()
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]))
    }

    it('20,000 expired retiring keys get retired; /v1/keys, ring, list see live ones', async () => {
      const active = (await getKeys(app))[0]!
      await insertExpiredRetiring(20_000, 'bulk')
      expect(await statusCounts()).toEqual({ active: 1, retiring: 20_000 })
      expect((await getKeys(app)).map((k) => [k.kid, k.status])).toEqual([[active.kid, 'active']])
      expect(await statusCounts()).toEqual({ active: 1, retired: 20_000 })
      expect((await listSigningKeys(app.server.tessera)).map((k) => k.kid)).toEqual([active.kid])
      expect(await listSigningKeys(app.server.tessera, { all: true })).toHaveLength(20_001)
      // Tokens of the live key still verify through the key ring.
      await expectMeStatus(app, (await registerAndLogin(app)).tokens.access_token, 200)
    })

    it('a rotation retires the expired retiring keys in its own transaction', async () => {
      await insertExpiredRetiring(5, 'rotation')
      const { retired } = await rotateSigningKey(app.server.tessera)
      app.server.tessera.keys.invalidate()
      const rows = await app.server.tessera.db
        .selectFrom('signing_keys')
        .select(['kid', 'status'])
        .where('status', '!=', 'retired')
        .orderBy('kid')
        .execute()
      expect(rows.map((r) => r.status).sort()).toEqual(['active', 'retiring'])
      expect(rows.find((r) => r.status === 'retiring')!.kid).toBe(retired)
    })
  })

  describe(`the first signing key [${dialect}]`, () => {
    it('concurrent ensureActiveKey calls on an empty database leave one active key', async () => {
      const database = await createTestDatabase(dialect)
      // Two connections, as two replicas starting together would have.
      const handles = await Promise.all([
        connectDatabase(database.url),
        connectDatabase(database.url),
      ])
      try {
        await migrateOrThrow(handles[0]!.db)
        const clock = testClock()
        const config = { accessTokenTtl: 900, keyEncryptionKey: undefined }
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            ensureActiveKey({ db: handles[i % 2]!.db, clock, config }),
          ),
        )
        const rows = await handles[0]!.db.selectFrom('signing_keys').selectAll().execute()
        expect(rows).toHaveLength(1)
        expect(rows[0]!.status).toBe('active')
        expect(new Set(results.map((r) => r.kid))).toEqual(new Set([rows[0]!.kid]))
      } finally {
        for (const handle of handles) await handle.close()
        await database.drop()
      }
    })
  })

  describe(`KEY_ENCRYPTION_KEY [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { KEY_ENCRYPTION_KEY: kek() } })
    })
    afterAll(() => app.close())

    it('stores secret keys encrypted (enc.v1.), never as k4.secret; tokens verify', async () => {
      await rotateSigningKey(app.server.tessera)
      app.clock.advance(SIGNER_CACHE_MS + 1000)
      const rows = await app.server.tessera.db.selectFrom('signing_keys').selectAll().execute()
      expect(rows).toHaveLength(2)
      for (const row of rows) {
        expect(row.secret_key.startsWith('enc.v1.')).toBe(true)
        expect(row.secret_key).not.toContain('k4.secret')
      }
      const { tokens } = await registerAndLogin(app)
      expect(kidOf(tokens.access_token)).toBe(rows.find((r) => r.status === 'active')!.kid)
      await expectMeStatus(app, tokens.access_token, 200)
    })

    it('keys list reports every key as encrypted', async () => {
      const info = await listSigningKeys(app.server.tessera)
      expect(info.length).toBeGreaterThan(0)
      for (const key of info) expect(key.encrypted).toBe(true)
    })
  })

  describe(`restart with encrypted keys [${dialect}]`, () => {
    it('the right KEY_ENCRYPTION_KEY restarts on the same key; wrong/none stops it', async () => {
      const database = await createTestDatabase(dialect)
      const key = kek()
      const env = (extra: Env): Env => ({
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: database.url,
        LOG_LEVEL: 'silent',
        ...extra,
      })
      try {
        const first = await startServer(loadConfig(env({ KEY_ENCRYPTION_KEY: key })))
        let token: string
        try {
          const api = client(first.url)
          const email = uniqueEmail('restart')
          expect(
            (await api.request('/v1/user/auth/register', { json: { email, password: PASSWORD } }))
              .status,
          ).toBe(201)
          const res = await api.request('/v1/user/auth/login', {
            json: { email, password: PASSWORD },
          })
          expect(res.status).toBe(200)
          token = ((await res.json()) as { access_token: string }).access_token
        } finally {
          await first.close()
        }

        const bad: [string, Env][] = [
          ['a wrong key', env({ KEY_ENCRYPTION_KEY: kek() })],
          ['no key', env({})],
        ]
        for (const [what, badEnv] of bad) {
          await expect(startServer(loadConfig(badEnv)), what).rejects.toThrow(/KEY_ENCRYPTION_KEY/)
        }

        const second = await startServer(loadConfig(env({ KEY_ENCRYPTION_KEY: key })))
        try {
          const api = client(second.url)
          const me = await api.request('/v1/user/me', { token })
          expect(me.status, await me.clone().text()).toBe(200)
          expect((await getKeys(api)).map((k) => k.kid)).toEqual([kidOf(token)])
        } finally {
          await second.close()
        }
      } finally {
        await database.drop()
      }
    })
  })
}
