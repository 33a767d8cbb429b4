import type { Kysely } from 'kysely'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { PasswordHasher } from './accounts/password-hasher.js'
import type { Clock } from './clock.js'
import type { Database } from './db/schema.js'
import type { Logger } from './logger.js'

export type LoginOutcome = 'ok' | 'invalid_credentials' | 'disabled' | 'rate_limited'
export type RefreshOutcome = 'rotated' | 'replayed' | 'invalid' | 'reused' | 'rate_limited'

const LOGIN_OUTCOMES: readonly LoginOutcome[] = [
  'ok',
  'invalid_credentials',
  'disabled',
  'rate_limited',
]
const REFRESH_OUTCOMES: readonly RefreshOutcome[] = [
  'rotated',
  'replayed',
  'invalid',
  'reused',
  'rate_limited',
]

/**
 * Seconds. From a cached `/health` (well under a millisecond) to a queued argon2 login (tens to
 * hundreds of milliseconds under load).
 */
/**
 * How long a count of live sessions is reused. Counting costs a pass over the live sessions'
 * index; scrapes every few seconds (from several Prometheus servers) would repeat it for a value
 * that changes slowly (README "Metrics").
 */
export const SESSIONS_LIVE_REFRESH_MS = 30_000
const REFRESH_SECONDS = SESSIONS_LIVE_REFRESH_MS / 1000

/** The count behind `tessera_sessions_live`; `sessions_live` (migration 0006) is its index. */
export function countLiveSessions(db: Kysely<Database>, now: number) {
  return db
    .selectFrom('sessions')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
}

const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/**
 * Prometheus metrics of one Tessera instance (`GET /metrics`). Each instance has its own registry,
 * never prom-client's global one, so several apps in one process (the tests) do not collide.
 */
export interface Metrics {
  readonly registry: Registry
  /**
   * Request latency by method, matched route template (never the raw path: ids would make the
   * label set unbounded) and status. Its `_count` series are the request counts.
   */
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>
  readonly logins: Counter<'outcome'>
  readonly refreshes: Counter<'outcome'>
  readonly reuseDetections: Counter
  /** Rows the retention job deleted, by table (src/retention/prune.ts). */
  readonly prunedRows: Counter<'table'>
  /** Forgets every metric; the instance is closing. */
  close(): void
}

export interface MetricsSources {
  db: Kysely<Database>
  clock: Clock
  hasher: Pick<PasswordHasher, 'stats'>
  logger: Logger
}

export function createMetrics(
  sources: MetricsSources,
  options: { defaultMetrics?: boolean } = {},
): Metrics {
  const registry = new Registry()
  const { db, clock, hasher, logger } = sources

  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry })

  const httpRequestDuration = new Histogram({
    name: 'tessera_http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  })

  const logins = new Counter({
    name: 'tessera_logins_total',
    help: 'Password logins by outcome (ok, invalid_credentials, disabled, rate_limited)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  })
  const refreshes = new Counter({
    name: 'tessera_refreshes_total',
    help: 'Refresh-token presentations by outcome (replayed: the reuse interval answered again)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  })
  // Every outcome is exported from the start, at 0, so rate() and alerts see it before it happens.
  for (const outcome of LOGIN_OUTCOMES) logins.inc({ outcome }, 0)
  for (const outcome of REFRESH_OUTCOMES) refreshes.inc({ outcome }, 0)

  const reuseDetections = new Counter({
    name: 'tessera_refresh_reuse_detected_total',
    help: 'Spent refresh tokens presented again: the session family was revoked',
    registers: [registry],
  })

  const prunedRows = new Counter({
    name: 'tessera_pruned_rows_total',
    help: 'Rows the retention job deleted, by table (README, "Storage and retention")',
    labelNames: ['table'] as const,
    registers: [registry],
  })

  // One count per SESSIONS_LIVE_REFRESH_MS, whatever the number of scrapes: scrapes in between get
  // the cached value, and scrapes that arrive while a count runs wait for that same count.
  let liveSessions: { value: number; countedAt: number } | undefined
  let counting: Promise<number> | undefined
  const count = async (): Promise<number> => {
    const now = clock()
    try {
      const row = await countLiveSessions(db, now).executeTakeFirst()
      liveSessions = { value: Number(row?.n ?? 0), countedAt: now }
      return liveSessions.value
    } catch (err) {
      // A scrape still answers while the database is down; NaN says "unknown" rather than 0.
      // Not cached: the next scrape tries again.
      logger.warn({ err }, 'metrics: could not count live sessions')
      return Number.NaN
    }
  }
  const countLive = (): Promise<number> => {
    counting ??= count().finally(() => {
      counting = undefined
    })
    return counting
  }
  new Gauge({
    name: 'tessera_sessions_live',
    help: `Sessions neither revoked nor expired (counted at most every ${REFRESH_SECONDS} s)`,
    registers: [registry],
    async collect() {
      const fresh =
        liveSessions !== undefined && clock() - liveSessions.countedAt < SESSIONS_LIVE_REFRESH_MS
      this.set(fresh ? liveSessions!.value : await countLive())
    },
  })

  new Gauge({
    name: 'tessera_argon2_active',
    help: 'Password hashes running now',
    registers: [registry],
    collect() {
      this.set(hasher.stats().active)
    },
  })
  new Gauge({
    name: 'tessera_argon2_queued',
    help: 'Password hashes waiting for a slot',
    registers: [registry],
    collect() {
      this.set(hasher.stats().queued)
    },
  })

  return {
    registry,
    httpRequestDuration,
    logins,
    refreshes,
    reuseDetections,
    prunedRows,
    close: () => registry.clear(),
  }
}
