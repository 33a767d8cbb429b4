import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import { notify } from '../db/notify.js'
import type { Database, RevocationKind } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { longestTokenLifetime } from '../tokens/lifetime.js'

/**
 * The revocation log (docs/revocation.md): one row per event that ends access, written in the
 * transaction of the change, read by every replica and published to verifiers as a signed feed.
 */

/** An event that ends access. */
export type Revocation =
  /** Every token of this session (logout, logout-all, deletion, reuse, password change, ...). */
  | { kind: 'session'; sessionId: string }
  /** Every token of this user issued before now (the user was disabled, or deleted). */
  | { kind: 'user'; userId: string }
  /** Every token signed with this key (`tessera keys revoke`). */
  | { kind: 'key'; kid: string }

/** A row of the log as readers see it. */
export interface RevocationEntry {
  /** The cursor: assigned in commit order, gapless, never reused (docs/revocation.md). */
  seq: number
  kind: RevocationKind
  /** Session id, user id or `kid`. */
  subject: string
  /** Epoch ms of the revocation; for a user, tokens issued before it are revoked. */
  at: number
}

/** PostgreSQL channel that tells every replica the log grew (src/db/notify.ts). */
export const REVOCATIONS_CHANNEL = 'tessera_revocations'
/** At most this many rows per INSERT (SQLite binds at most 32766 parameters per statement). */
const INSERT_CHUNK = 500
/**
 * Verifiers accept 30 s of clock skew (tessera/verify's default); the log keeps a minute beyond the
 * longest lifetime, as retiring keys do (src/keys/signing-keys.ts).
 */
const SKEW_MARGIN_MS = 60_000

function subjectOf(revocation: Revocation): string {
  switch (revocation.kind) {
    case 'session':
      return revocation.sessionId
    case 'user':
      return revocation.userId
    case 'key':
      return revocation.kid
  }
}

/**
 * Appends revocations to the log, inside the caller's transaction (or in one of its own), so the
 * entry commits or rolls back with the change it announces.
 *
 * Cursors: the first statement increments the one row of `revocation_log_head` and takes its row
 * lock, which PostgreSQL holds until the transaction ends. A second writer therefore gets its
 * cursors only after the first has committed (or rolled back, which hands the same cursors out
 * again): cursors are assigned in commit order without gaps, and a reader that sees cursor N has
 * seen every cursor below it. A reader can thus page with `seq > after` and never skip a row that
 * commits late (docs/revocation.md, "The cursor"). The lock is taken late in each revoking
 * transaction (after its session and token rows), and nothing that holds it waits for those rows,
 * so it adds no deadlock; it serialises revocations, which are rare, for the rest of their
 * transaction only. On SQLite the file's write lock orders the writers anyway.
 *
 * On PostgreSQL a NOTIFY in the same transaction tells every replica at commit.
 */
export async function recordRevocation(
  db: Kysely<Database>,
  clock: Clock,
  revocations: Revocation | readonly Revocation[],
): Promise<void> {
  const list: readonly Revocation[] = Array.isArray(revocations)
    ? revocations
    : [revocations as Revocation]
  if (list.length === 0) return
  await inTransaction(db, async (tx) => {
    const head = await tx
      .updateTable('revocation_log_head')
      .set((eb) => ({ seq: eb('seq', '+', list.length) }))
      .where('id', '=', 1)
      .returning('seq')
      .executeTakeFirstOrThrow()
    const first = Number(head.seq) - list.length + 1
    const at = clock()
    for (let offset = 0; offset < list.length; offset += INSERT_CHUNK) {
      await tx
        .insertInto('revocation_log')
        .values(
          list.slice(offset, offset + INSERT_CHUNK).map((revocation, i) => ({
            seq: first + offset + i,
            kind: revocation.kind,
            subject: subjectOf(revocation),
            at,
          })),
        )
        .execute()
    }
    await notify(tx, REVOCATIONS_CHANNEL)
  })
}

/** Entries with a cursor above `after`, in cursor order, at most `limit`. */
export async function readRevocations(
  db: Kysely<Database>,
  after: number,
  limit: number,
): Promise<RevocationEntry[]> {
  const rows = await db
    .selectFrom('revocation_log')
    .select(['seq', 'kind', 'subject', 'at'])
    .where('seq', '>', after)
    .orderBy('seq')
    .limit(limit)
    .execute()
  return rows.map((row) => ({ ...row, seq: Number(row.seq), at: Number(row.at) }))
}

/** The last cursor handed out (0 for an empty log). */
export async function revocationHead(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom('revocation_log_head')
    .select('seq')
    .where('id', '=', 1)
    .executeTakeFirstOrThrow()
  return Number(row.seq)
}

/**
 * How long an entry matters: no token issued before it can still be accepted after the longest
 * access-token lifetime (a job token's, when those are longer), and a revoked key may stay in a
 * verifier's cached key set for up to
 * `KEYS_MAX_AGE`; plus the skew margin.
 */
export function revocationRetentionMs(
  config: Pick<Config, 'accessTokenTtl' | 'keysMaxAge'> & Partial<Pick<Config, 'jobTokenMaxTtl'>>,
): number {
  return Math.max(longestTokenLifetime(config), config.keysMaxAge) * 1000 + SKEW_MARGIN_MS
}

/** Deletes entries older than the retention; returns how many. */
export async function pruneRevocations(
  db: Kysely<Database>,
  clock: Clock,
  config: Pick<Config, 'accessTokenTtl' | 'keysMaxAge'> & Partial<Pick<Config, 'jobTokenMaxTtl'>>,
): Promise<number> {
  const result = await db
    .deleteFrom('revocation_log')
    .where('at', '<', clock() - revocationRetentionMs(config))
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
