import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database } from '../db/schema.js'

/**
 * How long a claimed lease lasts without renewal. A pass renews it before every batch, so only a
 * holder that died (or hangs for this long on one statement) lets another replica take over.
 */
export const LEASE_MS = 60_000

/**
 * The right to run one prune pass, held by at most one process at a time over every replica on
 * one database (README, "Storage and retention"). It is a row (`prune_lease`, migration 0019)
 * claimed by a conditional UPDATE rather than a PostgreSQL advisory lock: the same code serves
 * both dialects and several processes on one SQLite file, it needs no connection held for the
 * pass, and a holder that dies frees it by expiry.
 */
export interface PruneLease {
  readonly holder: string
  /** Extends the lease; false when it was lost (expired and taken), and the pass must stop. */
  renew(): Promise<boolean>
  /** Frees the lease and records the pass as finished now. */
  release(): Promise<void>
}

/**
 * Claims the lease when it is free and the last pass finished at least `minGapMs` ago (the
 * server's PRUNE_INTERVAL, so that replicas share one pass per interval; `tessera prune`: 0).
 * Undefined when another pass holds it or ran too recently.
 */
export async function claimPruneLease(
  deps: { db: Kysely<Database>; clock: Clock },
  minGapMs: number,
): Promise<PruneLease | undefined> {
  const holder = randomUUID()
  const now = deps.clock()
  const claimed = await deps.db
    .updateTable('prune_lease')
    .set({ holder, until: now + LEASE_MS })
    .where('id', '=', 1)
    .where('until', '<=', now)
    .where('finished_at', '<=', now - minGapMs)
    .executeTakeFirst()
  if (Number(claimed.numUpdatedRows) !== 1) return undefined
  return {
    holder,
    async renew() {
      const renewed = await deps.db
        .updateTable('prune_lease')
        .set({ until: deps.clock() + LEASE_MS })
        .where('id', '=', 1)
        .where('holder', '=', holder)
        .executeTakeFirst()
      return Number(renewed.numUpdatedRows) === 1
    },
    async release() {
      const at = deps.clock()
      await deps.db
        .updateTable('prune_lease')
        .set({ holder: null, until: at, finished_at: at })
        .where('id', '=', 1)
        .where('holder', '=', holder)
        .execute()
    },
  }
}
