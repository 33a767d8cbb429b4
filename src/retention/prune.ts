import { setImmediate as yieldToRequests } from 'node:timers/promises'
import { type Kysely, sql } from 'kysely'
import type { Counter } from 'prom-client'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import type { Logger } from '../logger.js'
import { revocationRetentionMs } from '../revocations/log.js'
import { claimPruneLease } from './lease.js'

/**
 * The retention job (README, "Storage and retention"): what Tessera writes and no longer needs is
 * deleted, so the database stays bounded under steady load instead of growing with every refresh.
 */

/** Rows one statement deletes at most: each batch is its own short transaction. */
export const PRUNE_BATCH = 500

/**
 * The newest tokens a family keeps: its active token and the last rotated ones. Presenting one of
 * these again is reuse and revokes the family (docs/refresh.md); the reuse interval needs only
 * the newest two (the active token and its parent, which holds the kept answer). An older
 * ancestor is deleted: presenting it answers `invalid_refresh_token` and grants nothing, as
 * presenting any unknown token does; only the alarm (the family's revocation) is lost for a token
 * spent more than this many rotations ago (README, "Storage and retention", what reuse detection
 * keeps and why).
 */
export const KEPT_PER_FAMILY = 16

/**
 * Codes and tickets stay this long past their expiry, so that one presented just too late is
 * still told it expired (a device poll answers `expired_token`) rather than that it is unknown.
 */
export const EXPIRED_GRACE_MS = 3_600_000

export const PRUNED_TABLES = [
  'refresh_tokens',
  'sessions',
  'oauth_states',
  'login_codes',
  'link_tickets',
  'device_authorizations',
  'password_resets',
  'email_tokens',
  'login_devices',
  'rate_limits',
  'audit_events',
  'revocation_log',
] as const
export type PrunedTable = (typeof PRUNED_TABLES)[number]
export type PruneCounts = Record<PrunedTable, number>

export type PruneConfig = Pick<
  Config,
  'accessTokenTtl' | 'keysMaxAge' | 'jobTokenMaxTtl' | 'auditRetentionDays'
>

export interface PruneDeps {
  db: Kysely<Database>
  clock: Clock
  config: PruneConfig
  /** `tessera_pruned_rows_total` (src/metrics.ts), when the server prunes. */
  prunedRows?: Pick<Counter<'table'>, 'inc'>
}

/** One deletion rule: a table, its key, and the condition of the rows it deletes. */
interface Rule {
  table: PrunedTable
  key: string
  where: (now: number) => ReturnType<typeof sql>
}

/**
 * The rules, in order: tokens before their sessions (a session's deletion cascades to what is
 * left of them, which is then little), every rule a condition on an indexed column (migration
 * 0019).
 */
function rules(config: PruneConfig): Rule[] {
  // A revoked or expired session and its tokens stay while the revocation feed may still carry
  // it (docs/revocation.md): a spent token of a family that reuse revoked answers
  // `refresh_token_reused` again until then.
  const revocationMs = revocationRetentionMs(config)
  const auditMs = config.auditRetentionDays * 86_400_000
  const expired = (table: PrunedTable, key: string, column = 'expires_at'): Rule => ({
    table,
    key,
    where: (now) => sql`${sql.ref(column)} < ${now - EXPIRED_GRACE_MS}`,
  })
  return [
    {
      // Tokens past their own expiry: none can be claimed any more. The active token of a live
      // session is left to its session's deletion: a revocation may be updating it right now.
      table: 'refresh_tokens',
      key: 'id',
      where: (now) => sql`expires_at < ${now - revocationMs} and status <> 'active'`,
    },
    {
      table: 'refresh_tokens',
      key: 'id',
      where: (now) =>
        sql`family_id in (select id from sessions where revoked_at < ${now - revocationMs})`,
    },
    {
      // The ancestors beyond the newest KEPT_PER_FAMILY of a family (an index probe per row:
      // refresh_tokens_family_created).
      table: 'refresh_tokens',
      key: 'id',
      where: () => sql`status in ('rotated', 'superseded') and created_at < (
        select r.created_at from refresh_tokens r where r.family_id = refresh_tokens.family_id
        order by r.created_at desc limit 1 offset ${KEPT_PER_FAMILY - 1})`,
    },
    {
      table: 'sessions',
      key: 'id',
      where: (now) => sql`revoked_at < ${now - revocationMs}`,
    },
    {
      // Unrevoked and expired (the revoked ones are the rule above): the `sessions_live` index.
      table: 'sessions',
      key: 'id',
      where: (now) => sql`revoked_at is null and expires_at < ${now - revocationMs}`,
    },
    expired('oauth_states', 'state_hash'),
    expired('login_codes', 'code_hash'),
    expired('link_tickets', 'ticket_hash'),
    expired('device_authorizations', 'device_code_hash'),
    expired('password_resets', 'token_hash'),
    expired('email_tokens', 'token_hash'),
    expired('login_devices', 'token_hash'),
    {
      // rate-limiter-flexible's counters, whose window ended (by the system clock, the limiter's).
      table: 'rate_limits',
      key: 'key',
      where: () => sql`expire < ${Date.now()}`,
    },
    {
      table: 'audit_events',
      key: 'id',
      where: (now) => sql`at < ${now - auditMs}`,
    },
    {
      // The replicas delete these too as they follow the log (src/revocations/live.ts); this
      // covers a database no server runs on, and the head row is never touched.
      table: 'revocation_log',
      key: 'seq',
      where: (now) => sql`at < ${now - revocationMs}`,
    },
  ]
}

/**
 * Deletes up to PRUNE_BATCH rows of one rule in one statement (its own transaction) and answers
 * how many. `IN (SELECT ... LIMIT)` bounds the statement on both dialects.
 */
async function deleteBatch(db: Kysely<Database>, rule: Rule, now: number): Promise<number> {
  const table = sql.table(rule.table)
  const key = sql.ref(rule.key)
  const result = await sql`delete from ${table} where ${key} in (
    select ${key} from ${table} where ${rule.where(now)} limit ${PRUNE_BATCH})`.execute(db)
  return Number(result.numAffectedRows ?? 0n)
}

export type PrunePass =
  | { outcome: 'pruned'; deleted: PruneCounts }
  /** Another process holds the lease, or the last pass is more recent than `minGapMs`. */
  | { outcome: 'skipped' }

/**
 * One prune pass, if this process gets the lease (`claimPruneLease`): every rule in batches of
 * PRUNE_BATCH rows until it has nothing left, yielding to the event loop between batches so that
 * requests are served in between (on SQLite the one writer is free between two batches). The
 * lease is renewed before each batch; a pass that lost it stops. Answers the rows deleted per
 * table.
 */
export async function prune(
  deps: PruneDeps,
  options: { minGapMs?: number } = {},
): Promise<PrunePass> {
  const lease = await claimPruneLease(deps, options.minGapMs ?? 0)
  if (lease === undefined) return { outcome: 'skipped' }
  const deleted = Object.fromEntries(PRUNED_TABLES.map((t) => [t, 0])) as PruneCounts
  try {
    for (const rule of rules(deps.config)) {
      for (;;) {
        if (!(await lease.renew())) return { outcome: 'pruned', deleted }
        const count = await deleteBatch(deps.db, rule, deps.clock())
        deleted[rule.table] += count
        if (count > 0) deps.prunedRows?.inc({ table: rule.table }, count)
        await yieldToRequests()
        if (count < PRUNE_BATCH) break
      }
    }
  } finally {
    await lease.release()
  }
  return { outcome: 'pruned', deleted }
}

/**
 * Runs `prune` every `intervalSeconds` (PRUNE_INTERVAL) in the server, until stopped. Every
 * replica tries; the lease lets one of them run each interval's pass. A failed pass (a database
 * outage, a deadlock PostgreSQL broke) is logged and the next one starts over; the timer never
 * keeps the process alive.
 */
export function startPruning(
  deps: PruneDeps & { logger: Pick<Logger, 'info' | 'warn'> },
  intervalSeconds: number,
): { stop(): Promise<void> } {
  if (intervalSeconds === 0) return { stop: async () => {} }
  const intervalMs = intervalSeconds * 1000
  let running: Promise<unknown> = Promise.resolve()
  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    running = prune(deps, { minGapMs: intervalMs / 2 })
      .then((pass) => {
        if (pass.outcome !== 'pruned') return
        const total = Object.values(pass.deleted).reduce((a, b) => a + b, 0)
        if (total > 0) deps.logger.info({ deleted: pass.deleted }, `pruned ${total} rows`)
      })
      .catch((error: unknown) => deps.logger.warn({ err: error }, 'pruning failed'))
      .finally(() => {
        busy = false
      })
  }, intervalMs)
  timer.unref()
  return {
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
