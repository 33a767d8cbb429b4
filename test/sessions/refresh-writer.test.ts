/**
 * The refresh writer thread (docs/performance.md, "Refresh on SQLite: the writer thread"): once
 * refreshes on a SQLite file come faster than SQLITE_REFRESH_THREAD_FROM a second, their
 * transactions run on a thread with its own connection. Here the threshold is 1, so the first
 * refresh starts it; every answer must be the one the main thread would give (docs/refresh.md).
 */
import { existsSync } from 'node:fs'
import SqliteDatabase from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rotateSigningKey } from '../../src/keys/rotation.js'
import { refreshWriterThreadServing } from '../../src/sessions/refresh-sqlite.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import {
  expectProblem,
  refresh,
  refreshPair,
  registerAndLogin,
  type TokenPairBody,
} from '../support/users.js'

const serving = (app: TestApp) => refreshWriterThreadServing(app.server.tessera.database)

/**
 * One refresh starts the thread (the threshold is 1); then it opens its connection, which under
 * the tests' tsx loader and a loaded machine can take seconds.
 */
async function untilServing(app: TestApp): Promise<void> {
  const { tokens } = await registerAndLogin(app)
  await refreshPair(app, tokens.refresh_token)
  const deadline = Date.now() + 25_000
  while (!serving(app)) {
    if (Date.now() > deadline) throw new Error('the refresh writer thread did not start')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function kidOf(token: string): string {
  const footer = token.split('.')[3]!
  return (JSON.parse(Buffer.from(footer, 'base64url').toString()) as { kid: string }).kid
}

async function familyOf(app: TestApp, userId: string) {
  return app.server.tessera.db
    .selectFrom('refresh_tokens')
    .select(['status'])
    .where('user_id', '=', userId)
    .execute()
}

describe('refreshes on the writer thread [sqlite]', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp({
      env: {
        SQLITE_REFRESH_THREAD_FROM: '1',
        REFRESH_REUSE_INTERVAL: '10',
        // 20 sessions at once, from one address.
        RATE_LIMIT_REGISTER_PER_IP: '0',
        RATE_LIMIT_LOGIN_PER_IP: '0',
      },
    })
    await untilServing(app)
  })
  afterAll(() => app?.close())

  it('rotates a chain, replays inside the interval, and detects reuse after it', async () => {
    const { tokens, user } = await registerAndLogin(app)
    let pair: TokenPairBody = tokens
    const spent: string[] = []
    for (let i = 0; i < 20; i++) {
      spent.push(pair.refresh_token)
      pair = await refreshPair(app, pair.refresh_token)
      const me = await app.request('/v1/user/me', { token: pair.access_token })
      expect(me.status).toBe(200)
    }
    expect(serving(app)).toBe(true)
    // The parent of the last answer, again: the thread kept that answer; the main thread
    // (the general path) replays it byte for byte.
    const parent = spent.at(-1)!
    const again = await refreshPair(app, parent)
    expect(again).toEqual(pair)
    // Any older token is reuse: the family is revoked, its newest token with it.
    await expectProblem(await refresh(app, spent[0]!), 401, 'refresh_token_reused')
    await expectProblem(await refresh(app, pair.refresh_token), 401, 'invalid_refresh_token')
    const family = await familyOf(app, user.id)
    expect(family).toHaveLength(21)
    expect(family.filter((row) => row.status === 'active')).toHaveLength(0)
  })

  it('one token presented 30 times at once: one child, every answer the same', async () => {
    const { tokens, user } = await registerAndLogin(app)
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => refresh(app, tokens.refresh_token)),
    )
    const bodies = await Promise.all(answers.map((res) => res.text()))
    expect(answers.map((res) => res.status)).toEqual(answers.map(() => 200))
    expect(new Set(bodies).size).toBe(1)
    const family = await familyOf(app, user.id)
    expect(family.map((row) => row.status).sort()).toEqual(['active', 'rotated'])
    expect(serving(app)).toBe(true)
  })

  it('20 sessions rotating at once: each rotation committed once, each child usable', async () => {
    const sessions = await Promise.all(Array.from({ length: 20 }, () => registerAndLogin(app)))
    const last = await Promise.all(
      sessions.map(async ({ tokens }) => {
        let pair = tokens
        for (let i = 0; i < 10; i++) pair = await refreshPair(app, pair.refresh_token)
        return pair
      }),
    )
    for (const [i, { user }] of sessions.entries()) {
      const family = await familyOf(app, user.id)
      expect(family.filter((row) => row.status === 'rotated')).toHaveLength(10)
      expect(family.filter((row) => row.status === 'active')).toHaveLength(1)
      const me = await app.request('/v1/user/me', { token: last[i]!.access_token })
      expect(me.status).toBe(200)
    }
  })

  it('signs with a key made after the thread started', async () => {
    const { tokens } = await registerAndLogin(app)
    const before = await refreshPair(app, tokens.refresh_token)
    const { kid, retired } = await rotateSigningKey(app.server.tessera)
    expect(retired).toBe(kidOf(before.access_token))
    app.server.tessera.keys.invalidate()
    const after = await refreshPair(app, before.refresh_token)
    expect(serving(app)).toBe(true)
    expect(kidOf(after.access_token)).toBe(kid)
    const me = await app.request('/v1/user/me', { token: after.access_token })
    expect(me.status).toBe(200)
  })
})

describe('a busy database on the writer thread [sqlite]', () => {
  it('answers 503 with Retry-After, as the main thread does', { timeout: 30_000 }, async () => {
    const app = await makeTestApp({ env: { SQLITE_REFRESH_THREAD_FROM: '1' } })
    const other = new SqliteDatabase(app.databaseUrl.slice('sqlite:'.length))
    try {
      await untilServing(app)
      const { tokens } = await registerAndLogin(app)
      // Another process's connection holds the write lock past the busy timeout (5 s).
      other.exec('BEGIN IMMEDIATE')
      const res = await refresh(app, tokens.refresh_token)
      other.exec('ROLLBACK')
      await expectProblem(res, 503, 'service_unavailable')
      expect(res.headers.get('retry-after')).not.toBeNull()
      // Nothing was spent: the same token rotates now.
      await refreshPair(app, tokens.refresh_token)
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK')
      other.close()
      await app.close()
    }
  })
})

describe('the writer thread threshold [sqlite]', () => {
  it('0 keeps every refresh on the main thread', async () => {
    const app = await makeTestApp({ env: { SQLITE_REFRESH_THREAD_FROM: '0' } })
    try {
      let { tokens } = await registerAndLogin(app)
      for (let i = 0; i < 30; i++) tokens = await refreshPair(app, tokens.refresh_token)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(serving(app)).toBe(false)
    } finally {
      await app.close()
    }
  })

  it("closing the server closes the thread's connection too: the WAL file goes", {
    timeout: 40_000,
  }, async () => {
    const app = await makeTestApp({ env: { SQLITE_REFRESH_THREAD_FROM: '1' } })
    const wal = `${app.databaseUrl.slice('sqlite:'.length)}-wal`
    try {
      await untilServing(app)
      expect(existsSync(wal)).toBe(true)
      await app.server.close()
      expect(serving(app)).toBe(false)
      // SQLite removes the WAL when the last connection to the file closes: had the thread's
      // stayed open, the main connection's close would not have been the last.
      expect(existsSync(wal)).toBe(false)
    } finally {
      await app.close().catch(() => {})
    }
  })
})
