/**
 * Two Tessera processes on one database (docs/architecture.md, "Replicas"): everything a replica
 * needs from another — sessions, refresh-token families, signing keys, rate-limit counters —
 * must come from the shared database, never from the memory of the process that wrote it.
 *
 * Each process is the real `tessera serve` in its own OS process (test/support/process.ts); the
 * only thing the two share is DATABASE_URL (plus the configuration every replica must agree on).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js'
import { SIGNER_CACHE_MS } from '../../src/keys/signing-keys.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { runCli, startTesseraProcess, type TesseraProcess } from '../support/process.js'
import { PASSWORD, type TokenPairBody, uniqueEmail } from '../support/users.js'

/** What every replica of one deployment must share, besides DATABASE_URL. */
const SHARED_ENV = {
  TESSERA_ISSUER: 'https://id.example.org',
  KEY_ENCRYPTION_KEY: 'replica-test-key-encryption-key-not-for-production',
  // Each scenario is its own client address (X-Forwarded-For, as behind nginx), so the tight
  // login limit below only bites where a test means it to.
  TRUST_PROXY: '127.0.0.1',
  RATE_LIMIT_LOGIN_PER_IP: '3',
  // `tessera keys rotate` makes the next key active this many seconds later (README, "Keys").
  KEY_ROTATION_DELAY: '3',
  // No job tokens: a retiring key is published for one ACCESS_TOKEN_TTL (README, "Keys").
  JOB_TOKEN_MAX_TTL: '0',
}

interface PublishedKey {
  kid: string
  status: 'next' | 'active' | 'retiring'
}

interface Problem {
  code: string
}

let ipCounter = 0
/** A client address of its own (TEST-NET-3) for one scenario. */
function freshIp(): string {
  ipCounter += 1
  return `203.0.113.${ipCounter}`
}

async function bodyOf<T>(res: Response, status: number): Promise<T> {
  const text = await res.text()
  expect(res.status, text).toBe(status)
  return JSON.parse(text) as T
}

function as(ip: string): Record<string, string> {
  return { 'x-forwarded-for': ip }
}

async function register(
  p: TesseraProcess,
  ip: string,
  email = uniqueEmail('replica'),
): Promise<string> {
  await bodyOf(
    await p.request('/v1/user/auth/register', {
      json: { email, password: PASSWORD },
      headers: as(ip),
    }),
    201,
  )
  return email
}

function loginAt(p: TesseraProcess, ip: string, email: string): Promise<Response> {
  return p.request('/v1/user/auth/login', { json: { email, password: PASSWORD }, headers: as(ip) })
}

function refreshAt(p: TesseraProcess, refreshToken: string): Promise<Response> {
  return p.request('/v1/user/auth/refresh', { json: { refresh_token: refreshToken } })
}

async function meStatus(p: TesseraProcess, accessToken: string): Promise<number> {
  const res = await p.request('/v1/user/me', { token: accessToken })
  await res.body?.cancel()
  return res.status
}

async function keysAt(p: TesseraProcess): Promise<PublishedKey[]> {
  return (await bodyOf<{ keys: PublishedKey[] }>(await p.request('/v1/keys'), 200)).keys
}

/** The `kid` in an access token's footer: which key signed it. */
function kidOf(token: string): string {
  const footer = token.split('.')[3]!
  return (JSON.parse(Buffer.from(footer, 'base64url').toString('utf8')) as { kid: string }).kid
}

for (const dialect of dialects()) {
  describe(`concurrent migrations [${dialect}]`, () => {
    it('three `tessera migrate` at once on an empty database', async () => {
      // One applies, the others wait.
      const database = await createTestDatabase(dialect)
      try {
        const runs = await Promise.all(
          Array.from({ length: 3 }, () => runCli(['migrate'], { databaseUrl: database.url })),
        )
        for (const run of runs) expect(run.code, run.stderr).toBe(0)
        const applied = runs.filter(
          (r) =>
            /^Success\s+0001_initial$/m.test(r.stdout) &&
            /^Success\s+0002_federation$/m.test(r.stdout),
        )
        expect(applied, runs.map((r) => r.stdout).join('|')).toHaveLength(1)
        expect(runs.filter((r) => r.stdout.includes('Database is up to date'))).toHaveLength(2)
      } finally {
        await database.drop()
      }
    })
  })

  describe(`two replicas on one ${dialect} database`, () => {
    let database: TestDatabase
    let a: TesseraProcess
    let b: TesseraProcess
    let direct: DatabaseHandle

    beforeAll(async () => {
      database = await createTestDatabase(dialect)
      // Both start at once on the empty database: they race on the migrations and on creating the
      // first signing key.
      const [startedA, startedB] = await Promise.allSettled([
        startTesseraProcess({ databaseUrl: database.url, env: SHARED_ENV }),
        startTesseraProcess({ databaseUrl: database.url, env: SHARED_ENV }),
      ])
      if (startedA.status === 'fulfilled') a = startedA.value
      if (startedB.status === 'fulfilled') b = startedB.value
      if (startedA.status === 'rejected') throw startedA.reason
      if (startedB.status === 'rejected') throw startedB.reason
      direct = await connectDatabase(database.url, { poolSize: 2 })
    }, 60_000)

    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()])
      await direct?.close()
      await database?.drop()
    })

    it('started together on an empty database', async () => {
      // Migrated once, exactly one signing key.
      const keys = await direct.db
        .selectFrom('signing_keys')
        .select(['kid', 'status', 'secret_key'])
        .execute()
      expect(keys).toHaveLength(1)
      expect(keys[0]!.status).toBe('active')
      // KEY_ENCRYPTION_KEY is shared, so the key is stored encrypted and both can read it.
      expect(keys[0]!.secret_key.startsWith('enc.v1.')).toBe(true)
      const migrations = await direct.db
        .selectFrom('kysely_migration' as never)
        .select('name' as never)
        .execute()
      expect(migrations.map((m) => (m as { name: string }).name)).toEqual([
        '0001_initial',
        '0002_federation',
        '0003_reauth_client_pkce',
        '0004_refresh_hardening',
        '0005_login_devices',
        '0006_sessions_live_index',
        '0007_browser_sessions',
        '0008_link_tickets',
        '0009_refresh_replay',
        '0010_device_authorizations',
        '0011_revocation_log',
        '0012_key_rotation',
        '0013_mail',
        '0014_email_ownership',
        '0015_personal_tokens',
        '0017_service_clients',
        '0019_retention',
        '0020_second_factors',
        '0021_passkeys',
        '0022_amr_carriers',
        '0023_mail_requests',
      ])

      const [atA, atB] = await Promise.all([keysAt(a), keysAt(b)])
      expect(atA).toEqual(atB)
      expect(atA.map((k) => [k.kid, k.status])).toEqual([[keys[0]!.kid, 'active']])
    })

    it('a pair issued by A works and refreshes on B; reuse is seen by both', async () => {
      const ip = freshIp()
      const email = await register(a, ip)
      const first = await bodyOf<TokenPairBody>(await loginAt(a, ip, email), 200)

      expect(await meStatus(b, first.access_token)).toBe(200)
      const second = await bodyOf<TokenPairBody>(await refreshAt(b, first.refresh_token), 200)
      expect(await meStatus(a, second.access_token)).toBe(200)
      const third = await bodyOf<TokenPairBody>(await refreshAt(a, second.refresh_token), 200)

      // The token B spent, replayed at A: reuse, and the family ends for both replicas.
      const reused = await bodyOf<Problem>(await refreshAt(a, first.refresh_token), 401)
      expect(reused.code).toBe('refresh_token_reused')
      const dead = await bodyOf<Problem>(await refreshAt(b, third.refresh_token), 401)
      expect(dead.code).toBe('invalid_refresh_token')
      expect(await meStatus(b, third.access_token)).toBe(401)
      expect(await meStatus(a, third.access_token)).toBe(401)
    })

    it('50 concurrent refreshes of one token over A and B', async () => {
      // Inside the reuse interval (10 s by default) every presentation gets the one child's
      // answer, byte for byte, whichever replica sealed it and whichever opens it.
      const ip = freshIp()
      const email = await register(b, ip)
      const tokens = await bodyOf<TokenPairBody>(await loginAt(b, ip, email), 200)

      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) => refreshAt(i % 2 === 0 ? a : b, tokens.refresh_token)),
      )
      const results = await Promise.all(
        responses.map(async (r) => ({ status: r.status, text: await r.text() })),
      )
      expect(
        results.map((r) => r.status),
        results.map((r) => r.text).join('\n'),
      ).toEqual(Array(50).fill(200))
      expect(new Set(results.map((r) => r.text)).size).toBe(1)

      const session = await direct.db
        .selectFrom('sessions')
        .innerJoin('users', 'users.id', 'sessions.user_id')
        .select(['sessions.id', 'sessions.revoked_at'])
        .where('users.email', '=', email)
        .executeTakeFirstOrThrow()
      expect(session.revoked_at).toBeNull()
      const family = await direct.db
        .selectFrom('refresh_tokens')
        .select(['token_hash', 'status'])
        .where('family_id', '=', session.id)
        .execute()
      // The presented token (rotated) and its one child (active): nobody else inserted anything.
      expect(new Set(family.map((t) => t.token_hash)).size).toBe(2)
      expect(family.map((t) => t.status).sort()).toEqual(['active', 'rotated'])

      // The child is the live token on both replicas.
      const child = JSON.parse(results[0]!.text) as TokenPairBody
      for (const p of [a, b]) expect(await meStatus(p, child.access_token)).toBe(200)
      await bodyOf<TokenPairBody>(await refreshAt(a, child.refresh_token), 200)
    })

    it('a login-rate limit reached on A holds on B', async () => {
      const ip = freshIp()
      const email = await register(a, ip)
      for (let i = 0; i < 3; i++) await bodyOf(await loginAt(a, ip, email), 200)

      const atB = await loginAt(b, ip, email)
      expect((await bodyOf<Problem>(atB, 429)).code).toBe('rate_limited')
      expect(Number(atB.headers.get('retry-after'))).toBeGreaterThan(0)
      expect((await bodyOf<Problem>(await loginAt(a, ip, email), 429)).code).toBe('rate_limited')
      // The limit is the client address's, not the deployment's.
      await bodyOf(await loginAt(b, freshIp(), email), 200)
    })

    it('a key rotated by tessera keys rotate --now is published and used by both', async () => {
      const ip = freshIp()
      const email = await register(b, ip)
      const before = await bodyOf<TokenPairBody>(await loginAt(b, ip, email), 200)
      const oldKid = kidOf(before.access_token)

      // The operator's command, run against the same database with the same configuration.
      const cli = await runCli(['keys', 'rotate', '--now'], {
        databaseUrl: database.url,
        env: SHARED_ENV,
      })
      expect(cli.code, cli.stderr).toBe(0)
      const newKid = /^active\s+(\S+) /m.exec(cli.stdout)?.[1]
      expect(newKid, cli.stdout).toMatch(/^k4\.pid\./)
      expect(cli.stdout).toMatch(new RegExp(`^retiring\\s+${oldKid.replace(/[.]/g, '\\.')} `, 'm'))
      const rotatedAt = Date.now()

      // Both publish the new key as active and the old one as retiring, at once.
      for (const p of [a, b]) {
        const keys = await keysAt(p)
        expect(keys.find((k) => k.kid === newKid)?.status).toBe('active')
        expect(keys.find((k) => k.kid === oldKid)?.status).toBe('retiring')
        expect(keys.filter((k) => k.status === 'active')).toHaveLength(1)
      }

      // Each replica keeps signing with its cached key for at most SIGNER_CACHE_MS, then switches.
      // Refreshing (no argon2, no login limit) mints access tokens until one carries the new kid.
      async function firstTokenWithNewKey(
        p: TesseraProcess,
        refreshToken: string,
      ): Promise<string> {
        let current = refreshToken
        for (;;) {
          const pair = await bodyOf<TokenPairBody>(await refreshAt(p, current), 200)
          if (kidOf(pair.access_token) === newKid) return pair.access_token
          if (Date.now() - rotatedAt > SIGNER_CACHE_MS + 5_000) {
            throw new Error(
              `still signing with ${kidOf(pair.access_token)} ` +
                `${Date.now() - rotatedAt} ms after rotation`,
            )
          }
          current = pair.refresh_token
          await new Promise((resolve) => setTimeout(resolve, 250))
        }
      }
      const fromA = await bodyOf<TokenPairBody>(await loginAt(a, freshIp(), email), 200)
      const [newFromB, newFromA] = await Promise.all([
        firstTokenWithNewKey(b, before.refresh_token),
        firstTokenWithNewKey(a, fromA.refresh_token),
      ])

      // A verifies what B signed with the new key (it learns the kid from the database), and the
      // other way round; tokens of the retiring key still verify on both.
      expect(await meStatus(a, newFromB)).toBe(200)
      expect(await meStatus(b, newFromA)).toBe(200)
      expect(kidOf(before.access_token)).toBe(oldKid)
      for (const p of [a, b]) {
        // The session of `before` is still live (its refresh chain continued), so only the key
        // decides here.
        expect(await meStatus(p, before.access_token)).toBe(200)
      }
    }, 40_000)

    it('tessera keys rotate: both publish the next key, exactly one promotes it', async () => {
      // Sessions on both replicas, to refresh from at once when the key is due.
      const email = await register(a, freshIp())
      const sessions = await Promise.all(
        [a, b, a, b, a, b].map(async (p) => ({
          p,
          pair: await bodyOf<TokenPairBody>(await loginAt(p, freshIp(), email), 200),
        })),
      )
      const activeKid = kidOf(sessions[0]!.pair.access_token)

      const cli = await runCli(['keys', 'rotate'], { databaseUrl: database.url, env: SHARED_ENV })
      expect(cli.code, cli.stderr).toBe(0)
      const [, nextKid, activates] =
        /^next\s+(\S+) created \S+ activates (\S+)/m.exec(cli.stdout) ?? []
      expect(nextKid, cli.stdout).toMatch(/^k4\.pid\./)
      const activatesAt = Date.parse(activates!)

      async function refreshAll(): Promise<string[]> {
        const pairs = await Promise.all(
          sessions.map(async (s) => {
            s.pair = await bodyOf<TokenPairBody>(await refreshAt(s.p, s.pair.refresh_token), 200)
            return s.pair
          }),
        )
        return pairs.map((pair) => kidOf(pair.access_token))
      }

      // Published by both at once; neither signs with it before it is due.
      for (const p of [a, b]) {
        const keys = await keysAt(p)
        expect(keys.map((k) => [k.kid, k.status])).toEqual([
          [nextKid, 'next'],
          [activeKid, 'active'],
          ...keys.filter((k) => k.status === 'retiring').map((k) => [k.kid, k.status]),
        ])
      }
      expect(await refreshAll()).toEqual(sessions.map(() => activeKid))
      expect(Date.now()).toBeLessThan(activatesAt)

      // Due: every replica's next signature tries to promote it, all at once.
      await new Promise((resolve) => setTimeout(resolve, activatesAt - Date.now() + 20))
      expect(await refreshAll()).toEqual(sessions.map(() => nextKid))

      const promotions = await direct.db
        .selectFrom('audit_events')
        .select(['detail', 'at'])
        .where('event', '=', 'key_rotated')
        .where('detail', 'like', `%${nextKid}%`)
        .execute()
      expect(promotions.map((e) => JSON.parse(e.detail!) as unknown)).toEqual([
        { kid: nextKid, retired: activeKid },
      ])
      const rows = await direct.db
        .selectFrom('signing_keys')
        .select(['kid', 'status', 'activates_at', 'retire_after'])
        .where('kid', 'in', [nextKid!, activeKid])
        .execute()
      const promoted = rows.find((r) => r.kid === nextKid)!
      expect(promoted.status).toBe('active')
      expect(Number(promoted.activates_at)).toBeGreaterThanOrEqual(activatesAt)
      const retiring = rows.find((r) => r.kid === activeKid)!
      expect(retiring.status).toBe('retiring')
      // One TTL (900 s) + the signer cache (10 s) + a minute of skew from the promotion.
      expect(Number(retiring.retire_after) - Number(promoted.activates_at)).toBe(970_000)
      for (const p of [a, b]) {
        const keys = await keysAt(p)
        expect(keys.filter((k) => k.status === 'active').map((k) => k.kid)).toEqual([nextKid])
        expect(keys.find((k) => k.kid === activeKid)?.status).toBe('retiring')
        for (const s of sessions) expect(await meStatus(p, s.pair.access_token)).toBe(200)
      }
    }, 40_000)
  })
}
