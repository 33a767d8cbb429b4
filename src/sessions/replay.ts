import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import { preparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'
import { seal, unseal } from '../keys/key-encryption.js'
import type { Logger } from '../logger.js'
import type { TokenPair } from '../tokens/token-pair.js'

/**
 * The answer a rotation gave, kept for the reuse interval so that presenting the just-rotated
 * parent again gets the same pair back (docs/refresh.md, "The reuse interval"). It is stored on
 * the parent's row, AES-256-GCM under a key derived from KEY_ENCRYPTION_KEY with its own HKDF
 * label, bound to that row's id: a copy of the database alone does not reveal it, and a sealed
 * answer moved to another token's row does not open.
 */
const PURPOSE = 'refresh-replay v1'

export function sealAnswer(keyEncryptionKey: string, parentId: string, pair: TokenPair): string {
  return seal(keyEncryptionKey, PURPOSE, parentId, JSON.stringify(pair))
}

/** The pair `sealAnswer` stored on `parentId`'s row; undefined when it does not open. */
export function openAnswer(
  keyEncryptionKey: string,
  parentId: string,
  sealed: string,
): TokenPair | undefined {
  const json = unseal(keyEncryptionKey, PURPOSE, parentId, sealed)
  return json === undefined ? undefined : (JSON.parse(json) as TokenPair)
}

/** Keeps the answer of the rotation that spent `id`, until `until` (epoch ms). */
export const keepAnswer = preparedQuery((db, p: { id: string; sealed: string; until: number }) =>
  db
    .updateTable('refresh_tokens')
    .set({ replay_sealed: p.sealed, replay_until: p.until })
    .where('id', '=', p.id),
)

/**
 * Forgets the answer kept on `id`: its child is being used now, so presenting `id` again is reuse
 * from this transaction on (docs/refresh.md).
 */
export const forgetAnswer = preparedQuery((db, p: { id: string }) =>
  db
    .updateTable('refresh_tokens')
    .set({ replay_sealed: null, replay_until: null })
    .where('id', '=', p.id)
    .where('replay_until', 'is not', null),
)

/** Rows a sweep clears at most per statement, so that no statement holds many row locks. */
export const SWEEP_BATCH = 500
/** Statements a sweep runs at most; what is left waits for the next sweep. */
const SWEEP_MAX_BATCHES = 20

/**
 * Clears the sealed answers whose interval is over, in batches of `SWEEP_BATCH`. Each row is also
 * cleared when it is next touched (its child's rotation, the family's revocation); the sweep is
 * for the families that stopped refreshing. Each batch is one statement of its own: it takes no
 * session lock and at most one row of any family holds an answer, so it never waits for a
 * refresh that waits for it. Returns how many rows it cleared.
 */
export async function sweepExpiredAnswers(deps: {
  db: Kysely<Database>
  clock: Clock
}): Promise<number> {
  let cleared = 0
  for (let batch = 0; batch < SWEEP_MAX_BATCHES; batch++) {
    const now = deps.clock()
    const result = await deps.db
      .updateTable('refresh_tokens')
      .set({ replay_sealed: null, replay_until: null })
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('refresh_tokens')
          .select('id')
          .where('replay_until', 'is not', null)
          .where('replay_until', '<=', now)
          .orderBy('replay_until')
          .limit(SWEEP_BATCH),
      )
      .where('replay_until', '<=', now)
      .executeTakeFirst()
    const count = Number(result.numUpdatedRows)
    cleared += count
    if (count < SWEEP_BATCH) break
  }
  return cleared
}

/** How often a server sweeps: a kept answer outlives its interval by at most this. */
export const SWEEP_EVERY_MS = 15_000

/**
 * Runs `sweepExpiredAnswers` every `SWEEP_EVERY_MS` until stopped. A failed sweep (a database
 * outage) is logged and tried again next time; the timer never keeps the process alive.
 */
export function startAnswerSweep(deps: {
  db: Kysely<Database>
  clock: Clock
  logger: Pick<Logger, 'warn'>
}): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve()
  const timer = setInterval(() => {
    running = sweepExpiredAnswers(deps).catch((error: unknown) =>
      deps.logger.warn({ err: error }, 'sweeping expired refresh replay answers failed'),
    )
  }, SWEEP_EVERY_MS)
  timer.unref()
  return {
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
