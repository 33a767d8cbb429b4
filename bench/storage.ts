/**
 * The storage figure (README, "Storage and retention"; `npm run bench:storage`, and part of
 * `npm run bench`): simulated users refreshing every 15 minutes for 30 simulated days on a SQLite
 * file, the clock driven by hand, pruned every simulated hour by the retention job itself
 * (`prune`, as the server runs it with PRUNE_INTERVAL=3600). Each refresh writes what
 * `rotateRefreshToken` writes (the spent token marked `rotated`, its child inserted, the session
 * touched) with prepared statements, without signing an access token: the figure is about rows
 * and bytes, and 28.8 million signed refreshes would not finish in a benchmark's time. Every
 * simulated day 5% of the users log out and in again, so ended families are pruned too.
 *
 * BENCH_STORAGE_USERS (default 200, so that the figure takes well under a minute on a shared
 * machine) scales the users; 10000 is the figure (several minutes). The bound per session
 * does not depend on the number of users. Prints, at day 10, 20 and 30, `refresh_tokens` rows
 * per live session (bounded by KEPT_PER_FAMILY plus the refreshes of one prune interval) and the
 * database file's size (which stops growing once pruning frees as many pages as the refreshes
 * fill).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { loadConfig } from '../src/config/index.js'
import { connectDatabase } from '../src/db/connect.js'
import { migrateOrThrow } from '../src/db/migrate.js'
import { prune } from '../src/retention/prune.js'

const DAY_MS = 86_400_000
const TICK_MS = 15 * 60_000
const PRUNE_EVERY_TICKS = 4
const DAYS = 30

export interface StorageFigure {
  day: number
  liveSessions: number
  refreshTokens: number
  /** `refresh_tokens` rows per live session. */
  perSession: number
  fileMb: number
}

export async function measureStorage(
  users = Number(process.env.BENCH_STORAGE_USERS ?? 200),
): Promise<StorageFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-storage-'))
  const file = join(dir, 'storage.db')
  const database = await connectDatabase(`sqlite:${file}`)
  try {
    if (database.client.dialect !== 'sqlite') throw new Error('SQLite only')
    const sqlite = database.client.sqlite
    await migrateOrThrow(database.db)
    let now = Date.UTC(2026, 0, 1)
    const clock = () => now
    const config = loadConfig({})

    const insertUser = sqlite.prepare(
      `insert into users (id, email, email_normalized, password_hash, display_name, account_type,
        verified, disabled, role, created_at, updated_at) values (?, ?, ?, null, null, 'regular',
        0, 0, null, ?, ?)`,
    )
    const insertSession = sqlite.prepare(
      `insert into sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
        revoked_at, revoked_reason, authenticated_at) values (?, ?, ?, ?, ?, 'bench', '127.0.0.1',
        null, null, null)`,
    )
    const insertToken = sqlite.prepare(
      `insert into refresh_tokens (id, family_id, user_id, token_hash, parent_id, status,
        created_at, expires_at, used_at) values (?, ?, ?, ?, ?, 'active', ?, ?, null)`,
    )
    const spend = sqlite.prepare(
      `update refresh_tokens set status = 'rotated', used_at = ? where id = ?`,
    )
    const touch = sqlite.prepare('update sessions set last_used_at = ? where id = ?')
    const logout = sqlite.prepare(
      `update sessions set revoked_at = ?, revoked_reason = 'logout' where id = ?`,
    )
    const revokeTokens = sqlite.prepare(
      `update refresh_tokens set status = 'revoked' where family_id = ? and status = 'active'`,
    )
    const hash = () => createHash('sha256').update(randomBytes(32)).digest('base64url')

    interface Live {
      userId: string
      sessionId: string
      tokenId: string
    }
    const open = (userId: string): Live => {
      const sessionId = randomUUID()
      const tokenId = randomUUID()
      insertSession.run(sessionId, userId, now, now, now + config.sessionAbsoluteTtl * 1000)
      insertToken.run(
        tokenId,
        sessionId,
        userId,
        hash(),
        null,
        now,
        now + config.refreshTokenTtl * 1000,
      )
      return { userId, sessionId, tokenId }
    }
    const live: Live[] = []
    sqlite.transaction(() => {
      for (let i = 0; i < users; i++) {
        const id = randomUUID()
        insertUser.run(id, `u${i}@bench.example`, `u${i}@bench.example`, now, now)
        live.push(open(id))
      }
    })()
    const refreshAll = sqlite.transaction(() => {
      for (const s of live) {
        spend.run(now, s.tokenId)
        const child = randomUUID()
        insertToken.run(
          child,
          s.sessionId,
          s.userId,
          hash(),
          s.tokenId,
          now,
          now + config.refreshTokenTtl * 1000,
        )
        touch.run(now, s.sessionId)
        s.tokenId = child
      }
    })
    const churn = sqlite.transaction(() => {
      for (let i = 0; i < live.length; i += 20) {
        const s = live[(i + Math.floor(now / DAY_MS)) % live.length]!
        logout.run(now, s.sessionId)
        revokeTokens.run(s.sessionId)
        Object.assign(s, open(s.userId))
      }
    })

    let pruneMs = 0
    const figures: StorageFigure[] = []
    const ticksPerDay = DAY_MS / TICK_MS
    for (let tick = 1; tick <= DAYS * ticksPerDay; tick++) {
      now += TICK_MS
      refreshAll()
      if (tick % ticksPerDay === 0) churn()
      if (tick % PRUNE_EVERY_TICKS === 0) {
        const t0 = performance.now()
        await prune({ db: database.db, clock, config })
        pruneMs += performance.now() - t0
      }
      const day = tick / ticksPerDay
      if (day === 10 || day === 20 || day === 30) {
        sqlite.pragma('wal_checkpoint(TRUNCATE)')
        const rows = sqlite.prepare('select count(*) as n from refresh_tokens').get() as {
          n: number
        }
        const sessions = sqlite
          .prepare('select count(*) as n from sessions where revoked_at is null and expires_at > ?')
          .get(now) as { n: number }
        figures.push({
          day,
          liveSessions: sessions.n,
          refreshTokens: rows.n,
          perSession: rows.n / sessions.n,
          fileMb: statSync(file).size / 1_048_576,
        })
      }
    }
    if (process.env.BENCH_STORAGE_DEBUG) console.error(`prune ${pruneMs.toFixed(0)} ms`)
    return figures
  } finally {
    await database.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = performance.now()
  const figures = await measureStorage()
  console.log('| day | live sessions | refresh_tokens | rows per live session | file MB |')
  console.log('|---|---|---|---|---|')
  for (const f of figures) {
    console.log(
      `| ${f.day} | ${f.liveSessions} | ${f.refreshTokens} | ${f.perSession.toFixed(1)} | ` +
        `${f.fileMb.toFixed(1)} |`,
    )
  }
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`)
}
