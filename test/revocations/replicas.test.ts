/**
 * Two `tessera serve` processes on one PostgreSQL database (docs/revocation.md, "Delivery across
 * replicas"): a revocation written through one replica reaches the other's event stream and its
 * `/v1/authz` within a second, by LISTEN/NOTIFY or, with REVOCATION_NOTIFY=false, by polling; a
 * lost listening connection is re-established and what it missed is read.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { TEST_POSTGRES_URL } from '../support/postgres.js'
import { startTesseraProcess, type TesseraProcess } from '../support/process.js'
import { authz, openStream, REVOKED_AT_AUTHZ } from '../support/revocations.js'
import { PASSWORD, type TokenPairBody, tokenPairOf, uniqueEmail } from '../support/users.js'

const POSTGRES = dialects().includes('postgres')
/** The brief's bound: written on one replica, on the other's stream within a second. */
const BOUND_MS = 1_000

const SHARED = {
  KEY_ENCRYPTION_KEY: 'revocation-replicas-key-encryption-key-0123456789',
  RATE_LIMIT_REGISTER_PER_IP: '0',
  RATE_LIMIT_LOGIN_PER_IP: '0',
}

async function session(p: TesseraProcess): Promise<TokenPairBody> {
  const email = uniqueEmail('replica-revocation')
  expect(
    (await p.request('/v1/user/auth/register', { json: { email, password: PASSWORD } })).status,
  ).toBe(201)
  return tokenPairOf(
    await p.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
  )
}

/** The payload of the next `revocations` event carrying entries (skipping checkpoints). */
async function nextEntries(stream: Awaited<ReturnType<typeof openStream>>, timeoutMs: number) {
  for (;;) {
    const event = await stream.next(timeoutMs)
    if (event.event !== 'revocations') continue
    const payload = Buffer.from(event.data.split('.')[2]!, 'base64url').subarray(0, -64)
    const doc = JSON.parse(payload.toString('utf8')) as { entries: unknown[] }
    if (doc.entries.length > 0) return doc.entries
  }
}

describe.skipIf(!POSTGRES)('revocations across two replicas [postgres]', () => {
  let database: TestDatabase
  let a: TesseraProcess
  let b: TesseraProcess
  let polling: TesseraProcess
  const appName = `revocation-replica-${process.pid}-${Date.now()}`

  beforeAll(async () => {
    database = await createTestDatabase('postgres')
    a = await startTesseraProcess({ databaseUrl: database.url, env: SHARED })
    ;[b, polling] = await Promise.all([
      startTesseraProcess({ databaseUrl: database.url, env: { ...SHARED, PGAPPNAME: appName } }),
      startTesseraProcess({
        databaseUrl: database.url,
        env: { ...SHARED, REVOCATION_NOTIFY: 'false', REVOCATION_POLL_MS: '250' },
      }),
    ])
  }, 60_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop(), polling?.stop()])
    await database?.drop()
  })

  /** Logs a session out on A; resolves when B's stream and `/v1/authz` know, within `bound`. */
  async function crossesOver(replica: TesseraProcess, bound: number): Promise<void> {
    const tokens = await session(a)
    const stream = await openStream(replica.url)
    try {
      await stream.next() // the first document: where the stream stands
      const logout = await a.request('/v1/user/auth/logout', {
        json: { refresh_token: tokens.refresh_token },
      })
      expect(logout.status).toBe(204)
      // Counted from the logout's answer: the entry has committed on A.
      const entries = await nextEntries(stream, bound)
      expect(entries).toHaveLength(1)
      expect(await authz(replica, tokens.access_token)).toBe(REVOKED_AT_AUTHZ)
    } finally {
      stream.close()
    }
  }

  it('LISTEN/NOTIFY: written on A, on B’s stream and /v1/authz within a second', async () => {
    await crossesOver(b, BOUND_MS)
  })

  it('polling every 250 ms (REVOCATION_NOTIFY=false): within a second too', async () => {
    await crossesOver(polling, BOUND_MS)
  })

  it('a lost listening connection comes back and reads what it missed', async () => {
    const tokens = await session(a)
    const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL })
    await admin.connect()
    try {
      const killed = await admin.query(
        'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1',
        [`${appName}:listen`],
      )
      expect(killed.rowCount).toBe(1)
      // Written while B is not listening: only the read after reconnecting can find it (B's
      // safety poll runs every 5 s, longer than allowed here).
      await a.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      await expect
        .poll(() => authz(b, tokens.access_token), { timeout: 3_000, interval: 20 })
        .toBe(REVOKED_AT_AUTHZ)
      await expect
        .poll(
          async () =>
            (
              await admin.query('select 1 from pg_stat_activity where application_name = $1', [
                `${appName}:listen`,
              ])
            ).rowCount,
          { timeout: 5_000 },
        )
        .toBe(1)
    } finally {
      await admin.end()
    }
    // And it listens again.
    await crossesOver(b, BOUND_MS)
  })
})
