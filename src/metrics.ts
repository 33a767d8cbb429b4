import type { Kysely } from 'kysely'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { PasswordHasher } from './accounts/password-hasher.js'
import type { Clock } from './clock.js'
import type { Database } from './db/schema.js'
import type { Logger } from './logger.js'

export type LoginOutcome = 'ok' | 'invalid_credentials' | 'disabled' | 'rate_limited'
export type RefreshOutcome = 'rotated' | 'invalid' | 'reused' | 'rate_limited'

const LOGIN_OUTCOMES: readonly LoginOutcome[] = ['ok', 'invalid_credentials', 'disabled', 'rate_limited']
const REFRESH_OUTCOMES: readonly RefreshOutcome[] = ['rotated', 'invalid', 'reused', 'rate_limited']

/**
 * Seconds. From a cached `/health` (well under a millisecond) to a queued argon2 login (tens to
 * hundreds of milliseconds under load).
 */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

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
  /** Forgets every metric; the instance is closing. */
  close(): void
}

export interface MetricsSources {
  db: Kysely<Database>
  clock: Clock
  hasher: Pick<PasswordHasher, 'stats'>
  logger: Logger
}

export function createMetrics(sources: MetricsSources, options: { defaultMetrics?: boolean } = {}): Metrics {
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
    help: 'Refresh-token presentations by outcome (rotated, invalid, reused, rate_limited)',
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

  new Gauge({
    name: 'tessera_sessions_live',
    help: 'Sessions neither revoked nor expired (counted at scrape time)',
    registers: [registry],
    async collect() {
      try {
        const row = await db
          .selectFrom('sessions')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('revoked_at', 'is', null)
          .where('expires_at', '>', clock())
          .executeTakeFirst()
        this.set(Number(row?.n ?? 0))
      } catch (err) {
        // A scrape still answers while the database is down; NaN says "unknown" rather than 0.
        logger.warn({ err }, 'metrics: could not count live sessions')
        this.set(Number.NaN)
      }
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
    close: () => registry.clear(),
  }
}
