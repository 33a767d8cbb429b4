/**
 * Key rotation without a gap and key revocation (README, "Keys"; src/keys/rotation.ts): a
 * verifier that cached the keys just before `tessera keys rotate` never refuses a token through
 * the rotation; `--now` is today's immediate rotation; `keys revoke` withdraws a key at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { connectDatabase } from '../../src/db/connect.js'
import {
  promoteDueKey,
  publishNextSigningKey,
  revokeSigningKey,
  rotateSigningKey,
} from '../../src/keys/rotation.js'
import { retireWindowMs, SIGNER_CACHE_MS } from '../../src/keys/signing-keys.js'
import {
  createRemoteKeySet,
  createVerifier,
  TokenError,
  type TokenErrorReason,
  type Verifier,
} from '../../src/verify/index.js'
import { makeTestApp, type TestApp, testKeyEnv } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  PASSWORD,
  refreshPair,
  registerAndLogin,
  type TokenPairBody,
} from '../support/users.js'

const SECRET = 'rotation-test-service-secret-0123'
/** KEYS_MAX_AGE (300) + the verifier's refetch cooldown (30) + 30 s of margin. */
const DEFAULT_DELAY_MS = 360_000

interface PublishedKey {
  kid: string
  status: string
}

function kidOf(token: string): string {
  const footer = token.split('.')[3]!
  return (JSON.parse(Buffer.from(footer, 'base64url').toString('utf8')) as { kid: string }).kid
}

async function keysOf(app: TestApp): Promise<Array<[string, string]>> {
  const res = await app.request('/v1/keys')
  expect(res.status).toBe(200)
  const { keys } = (await res.json()) as { keys: PublishedKey[] }
  return keys.map((k) => [k.kid, k.status])
}

/** The reason `verifier` refuses `token` for, or 'accepted'. */
async function verdict(verifier: Verifier, token: string): Promise<TokenErrorReason | 'accepted'> {
  try {
    await verifier.verify(token)
    return 'accepted'
  } catch (error) {
    if (error instanceof TokenError) return error.reason
    throw error
  }
}

/** A verifier as a resource service runs it, over real HTTP, on the test app's clock. */
function verifierOf(app: TestApp) {
  const fetches = { count: 0 }
  const keySet = createRemoteKeySet({
    url: `${app.url}/v1/keys`,
    now: app.clock,
    fetch: (input, init) => {
      fetches.count += 1
      return fetch(input, init)
    },
  })
  const { issuer, audience } = app.server.tessera.config
  const verifier = createVerifier({ keySet }, { issuer, audience, now: app.clock })
  return { verifier, fetches }
}

/** How Tessera itself answers the token: `/v1/user/me`, `/v1/authz` and introspection. */
async function tesseraAnswers(app: TestApp, token: string) {
  const me = await app.request('/v1/user/me', { token })
  const authz = await app.request('/v1/authz', { token })
  const introspection = await app.request('/v1/token/introspect', {
    json: { token },
    headers: { 'x-service-secret': SECRET },
  })
  await me.body?.cancel()
  await authz.body?.cancel()
  return {
    me: me.status,
    authz: authz.status,
    active: ((await introspection.json()) as { active: boolean }).active,
  }
}

const ACCEPTED = { me: 200, authz: 200, active: true }
const REFUSED = { me: 401, authz: 401, active: false }

/** The server environment of a `tessera keys ...` run against the test app's database. */
function cliEnv(app: TestApp): Record<string, string> {
  return {
    DATABASE_URL: app.databaseUrl,
    LOG_LEVEL: 'silent',
    ...(testKeyEnv(app.databaseUrl) as Record<string, string>),
  }
}

for (const dialect of dialects()) {
  describe(`keys rotate: no verifier refuses a token through the rotation [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      // Refreshed every 5 s of the test clock for 8 minutes: more than the default limit.
      app = await makeTestApp({ dialect, env: { RATE_LIMIT_REFRESH_PER_SESSION: '0' } })
    })
    afterAll(() => app.close())

    it('sign and verify every 5 s, from before keys rotate until after the promotion', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const oldKid = kidOf(tokens.access_token)
      // The first verifier fetched the keys a moment before the rotation: the worst case.
      const early = verifierOf(app)
      expect(await verdict(early.verifier, tokens.access_token)).toBe('accepted')
      expect(early.fetches.count).toBe(1)

      app.clock.advance(1000)
      const published = await publishNextSigningKey(app.server.tessera)
      expect(published.outcome).toBe('published')
      const rotatedAt = app.clock()
      // On the next whole second after the delay.
      expect(published.activatesAt - rotatedAt).toBeGreaterThanOrEqual(DEFAULT_DELAY_MS)
      expect(published.activatesAt - rotatedAt).toBeLessThan(DEFAULT_DELAY_MS + 1000)
      expect(await keysOf(app)).toEqual([
        [published.kid, 'next'],
        [oldKid, 'active'],
      ])

      let pair: TokenPairBody = tokens
      const issued: string[] = [tokens.access_token]
      let late: ReturnType<typeof verifierOf> | undefined
      const kids: Array<[number, string]> = []
      while (app.clock() < published.activatesAt + 120_000) {
        app.clock.advance(5000)
        // A second verifier starts just before the promotion: it fetches both keys.
        if (late === undefined && app.clock() >= published.activatesAt - 5000) {
          late = verifierOf(app)
        }
        pair = await refreshPair(app, pair.refresh_token)
        issued.push(pair.access_token)
        kids.push([app.clock() - published.activatesAt, kidOf(pair.access_token)])
        // Every token issued so far (all live: 15 minutes) passes every verifier, every time.
        for (const verifier of [early.verifier, late?.verifier]) {
          if (verifier === undefined) continue
          for (const token of issued) {
            expect(await verdict(verifier, token), `${app.clock() - rotatedAt} ms`).toBe('accepted')
          }
        }
      }

      // Signed with the old key until the new one was due, with the new one from then on.
      expect(kids.filter(([at]) => at < 0).every(([, kid]) => kid === oldKid)).toBe(true)
      expect(kids.filter(([at]) => at >= 0).every(([, kid]) => kid === published.kid)).toBe(true)
      expect(kids.some(([at]) => at >= 0)).toBe(true)
      // The early verifier learnt the key when its copy went stale (max-age 300), not by a
      // refetch forced by an unknown kid.
      expect(early.fetches.count).toBe(2)
      expect(await keysOf(app)).toEqual([
        [published.kid, 'active'],
        [oldKid, 'retiring'],
      ])
      const login = await app.request('/v1/user/auth/login', {
        json: { email, password: PASSWORD },
      })
      expect(kidOf(((await login.json()) as TokenPairBody).access_token)).toBe(published.kid)
    })
  })

  describe(`keys rotate, the rules around it [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { SERVICE_SECRET: SECRET } })
    })
    afterAll(() => app.close())
    afterEach(async () => {
      // Each case starts without a pending rotation.
      const { tessera } = app.server
      const next = await tessera.db
        .selectFrom('signing_keys')
        .select('kid')
        .where('status', '=', 'next')
        .executeTakeFirst()
      if (next !== undefined) await revokeSigningKey(tessera, next.kid)
    })

    it('one rotation at a time: a second keys rotate reports the pending one', async () => {
      const first = await publishNextSigningKey(app.server.tessera)
      const second = await publishNextSigningKey(app.server.tessera)
      expect(first.outcome).toBe('published')
      expect(second).toEqual({ outcome: 'pending', kid: first.kid, activatesAt: first.activatesAt })
      const rows = await app.server.tessera.db
        .selectFrom('signing_keys')
        .select('kid')
        .where('status', '=', 'next')
        .execute()
      expect(rows.map((r) => r.kid)).toEqual([first.kid])
    })

    it('KEY_ROTATION_DELAY sets when the next key becomes active', async () => {
      const custom = await makeTestApp({ dialect, env: { KEY_ROTATION_DELAY: '45' } })
      try {
        const published = await publishNextSigningKey(custom.server.tessera)
        const delay = published.activatesAt - custom.clock()
        expect(delay).toBeGreaterThanOrEqual(45_000)
        expect(delay).toBeLessThan(46_000)
        // Still the old key 1 ms before, the new one at the moment.
        const { tokens } = await registerAndLogin(custom)
        custom.clock.set(published.activatesAt - 1)
        const before = await refreshPair(custom, tokens.refresh_token)
        expect(kidOf(before.access_token)).not.toBe(published.kid)
        custom.clock.set(published.activatesAt)
        const after = await refreshPair(custom, before.refresh_token)
        expect(kidOf(after.access_token)).toBe(published.kid)
      } finally {
        await custom.close()
      }
    })

    it('--now: a new key signs at once, the old retires, a pending next is withdrawn', async () => {
      const { tokens } = await registerAndLogin(app)
      const oldKid = kidOf(tokens.access_token)
      const verifier = verifierOf(app)
      expect(await verdict(verifier.verifier, tokens.access_token)).toBe('accepted')
      const pending = await publishNextSigningKey(app.server.tessera)

      app.clock.advance(1000)
      const { kid, retired, withdrawn } = await rotateSigningKey(app.server.tessera)
      expect([retired, withdrawn]).toEqual([oldKid, pending.kid])
      const published = await keysOf(app)
      expect(published.slice(0, 2)).toEqual([
        [kid, 'active'],
        [oldKid, 'retiring'],
      ])
      expect(published.map(([k]) => k)).not.toContain(pending.kid)

      // Within a second (the key ring's refresh) Tessera signs with it...
      app.clock.advance(1000)
      const fresh = await refreshPair(app, tokens.refresh_token)
      expect(kidOf(fresh.access_token)).toBe(kid)
      expect(await tesseraAnswers(app, fresh.access_token)).toEqual(ACCEPTED)
      expect(await tesseraAnswers(app, tokens.access_token)).toEqual(ACCEPTED)
      // ...which is the emergency's price: a verifier inside its cooldown does not know it yet,
      // and does once the cooldown has passed.
      expect(await verdict(verifier.verifier, fresh.access_token)).toBe('unknown_key')
      app.clock.advance(30_000)
      expect(await verdict(verifier.verifier, fresh.access_token)).toBe('accepted')
      expect(await verdict(verifier.verifier, tokens.access_token)).toBe('accepted')

      // The withdrawn key never becomes active.
      app.clock.set(pending.activatesAt + 1000)
      expect(kidOf((await refreshPair(app, fresh.refresh_token)).access_token)).toBe(kid)
      const row = await app.server.tessera.db
        .selectFrom('signing_keys')
        .select(['status', 'activates_at'])
        .where('kid', '=', pending.kid)
        .executeTakeFirstOrThrow()
      expect(row).toEqual({ status: 'retired', activates_at: null })
    })
  })

  describe(`keys revoke [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect, env: { SERVICE_SECRET: SECRET } })
    })
    afterAll(() => app.close())

    it('a retiring key: out of /v1/keys at once, its tokens refused by Tessera', async () => {
      const { tokens } = await registerAndLogin(app)
      const oldKid = kidOf(tokens.access_token)
      const { kid: activeKid } = await rotateSigningKey(app.server.tessera)
      app.clock.advance(SIGNER_CACHE_MS)
      const current = await refreshPair(app, tokens.refresh_token)
      expect(kidOf(current.access_token)).toBe(activeKid)
      expect(await tesseraAnswers(app, tokens.access_token)).toEqual(ACCEPTED)

      // The operator's command, a process of its own: it shares only the database.
      const run = await runTesseraInProcess(['keys', 'revoke', oldKid], { env: cliEnv(app) })
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toBe(`revoked  ${oldKid} (was retiring)\n`)
      expect(await keysOf(app)).toEqual([[activeKid, 'active']])

      // The server's view of the keys is at most a second old.
      app.clock.advance(1000)
      expect(await tesseraAnswers(app, tokens.access_token)).toEqual(REFUSED)
      expect(await tesseraAnswers(app, current.access_token)).toEqual(ACCEPTED)
      const me = await app.request('/v1/user/me', { token: tokens.access_token })
      expect(me.headers.get('www-authenticate')).toContain('error="invalid_token"')
      await expectProblem(me, 401, 'unauthorized')

      const again = await runTesseraInProcess(['keys', 'revoke', oldKid], { env: cliEnv(app) })
      expect([again.code, again.stdout]).toEqual([0, `revoked  ${oldKid} (already)\n`])
    })

    it('the active key: a fresh key signs at once, the revoked one verifies nothing', async () => {
      const { tokens } = await registerAndLogin(app)
      const revokedKid = kidOf(tokens.access_token)
      const outcome = await revokeSigningKey(app.server.tessera, revokedKid)
      expect(outcome).toMatchObject({ outcome: 'revoked', was: 'active' })
      const fresh = outcome.outcome === 'revoked' ? outcome.activated! : ''
      expect(fresh).toMatch(/^k4\.pid\./)
      const published = await keysOf(app)
      expect(published[0]).toEqual([fresh, 'active'])
      expect(published.map(([k]) => k)).not.toContain(revokedKid)

      app.clock.advance(1000)
      const pair = await refreshPair(app, tokens.refresh_token)
      expect(kidOf(pair.access_token)).toBe(fresh)
      expect(await tesseraAnswers(app, pair.access_token)).toEqual(ACCEPTED)
      expect(await tesseraAnswers(app, tokens.access_token)).toEqual(REFUSED)

      const events = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('detail')
        .where('event', '=', 'key_revoked')
        .where('detail', 'like', `%${revokedKid}%`)
        .execute()
      expect(events.map((e) => JSON.parse(e.detail!) as unknown)).toEqual([
        { kid: revokedKid, was: 'active', activated: fresh },
      ])
    })

    it('the next key: the rotation is cancelled, the key never signs', async () => {
      const { tokens } = await registerAndLogin(app)
      const activeKid = kidOf(tokens.access_token)
      const next = await publishNextSigningKey(app.server.tessera)
      expect(await revokeSigningKey(app.server.tessera, next.kid)).toEqual({
        outcome: 'revoked',
        kid: next.kid,
        was: 'next',
        activated: null,
      })
      expect((await keysOf(app)).map(([k]) => k)).not.toContain(next.kid)
      app.clock.set(next.activatesAt + 1000)
      expect(kidOf((await refreshPair(app, tokens.refresh_token)).access_token)).toBe(activeKid)
      expect(await promoteDueKey(app.server.tessera)).toBeUndefined()
    })

    it('an unknown key id changes nothing', async () => {
      const kid = `k4.pid.${'A'.repeat(44)}`
      expect(await revokeSigningKey(app.server.tessera, kid)).toEqual({ outcome: 'unknown', kid })
    })
  })

  describe(`keys list [${dialect}]`, () => {
    it('shows next, active, retiring, retired and revoked keys with their dates', async () => {
      const app = await makeTestApp({ dialect })
      try {
        const { tessera } = app.server
        const t0 = app.clock()
        const retiredKid = kidOf((await registerAndLogin(app)).tokens.access_token)
        app.clock.set(t0 + 1000)
        const { kid: revokedKid } = await rotateSigningKey(tessera)
        app.clock.set(t0 + 2000)
        const { kid: retiringKid } = await rotateSigningKey(tessera)
        // The first key's window (from its retirement) has ended, the second's has not.
        const t1 = t0 + 1000 + retireWindowMs(tessera)
        app.clock.set(t1)
        const { kid: activeKid } = await rotateSigningKey(tessera)
        await revokeSigningKey(tessera, revokedKid)
        app.clock.set(t1 + 1000)
        const next = await publishNextSigningKey(tessera)

        const run = await runTesseraInProcess(['keys', 'list', '--all'], { env: cliEnv(app) })
        expect(run.code, run.stderr).toBe(0)
        const time = (ms: number) =>
          new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')
        const lines = run.stdout.trimEnd().split('\n')
        expect(lines.map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
          ['next', next.kid],
          ['active', activeKid],
          ['retiring', retiringKid],
          ['revoked', revokedKid],
          ['retired', retiredKid],
        ])
        expect(lines[0]).toMatch(/^next {5}\S+ created \S+Z activates \S+Z( \(encrypted\))?$/)
        expect(lines[0]).toContain(`activates ${time(next.activatesAt)}`)
        expect(lines[1]).toContain(`created ${time(t1)} activated ${time(t1)}`)
        expect(lines[2]).toContain(
          `activated ${time(t0 + 2000)} until ${time(t1 + retireWindowMs(tessera))}`,
        )
        expect(lines[3]).toMatch(/^revoked {2}\S+ created \S+Z activated \S+Z revoked \S+Z/)
        expect(lines[3]).toContain(`created ${time(t0 + 1000)} activated ${time(t0 + 1000)}`)
        expect(lines[4]).toContain(`retired ${time(t1)}`)

        // Without --all: only the keys that are published.
        const live = await runTesseraInProcess(['keys', 'list'], { env: cliEnv(app) })
        expect(
          live.stdout
            .trimEnd()
            .split('\n')
            .map((l) => l.split(/\s+/)[0]),
        ).toEqual(['next', 'active', 'retiring'])
      } finally {
        await app.close()
      }
    })
  })

  // Two connections in one process race for real only on PostgreSQL (better-sqlite3 blocks the
  // thread while it waits for the file lock); test/replicas/ races two processes on both.
  describe.runIf(dialect === 'postgres')(`promotion over two connections [${dialect}]`, () => {
    it('of 16 concurrent promotions over two connections, exactly one promotes', async () => {
      const app = await makeTestApp({ dialect, env: { KEY_ROTATION_DELAY: '0' } })
      // Another database handle, as another replica has.
      const other = await connectDatabase(app.databaseUrl)
      try {
        const { tessera } = app.server
        const activeKid = kidOf((await registerAndLogin(app)).tokens.access_token)
        const next = await publishNextSigningKey(tessera)
        app.clock.set(next.activatesAt)
        const results = await Promise.all(
          Array.from({ length: 16 }, (_, i) =>
            promoteDueKey({ ...tessera, db: i % 2 === 0 ? tessera.db : other.db }),
          ),
        )
        expect(results.filter((r) => r !== undefined)).toEqual([next.kid])
        const rows = await tessera.db
          .selectFrom('signing_keys')
          .select(['kid', 'status'])
          .where('status', 'in', ['next', 'active', 'retiring'])
          .orderBy('kid')
          .execute()
        expect(rows).toEqual(
          [
            { kid: next.kid, status: 'active' },
            { kid: activeKid, status: 'retiring' },
          ].sort((x, y) => (x.kid < y.kid ? -1 : 1)),
        )
      } finally {
        await other.close()
        await app.close()
      }
    })
  })
}
