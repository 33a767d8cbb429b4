import type SqliteDatabase from 'better-sqlite3'
import type { Config } from '../config/index.js'
import type { DatabaseClient, DatabaseHandle } from '../db/connect.js'
import type { Signer } from '../keys/key-ring.js'
import type { Logger } from '../logger.js'
import type { AccessTokenDeps } from '../tokens/access-token.js'
import type { AccessGrant } from '../tokens/grant.js'
import { type RefreshWriterThread, startRefreshWriterThread } from './refresh-writer-thread.js'
import type { SessionDeps } from './sessions.js'
import {
  rotationConfigOf,
  type SqliteRotated,
  type SqliteRotation,
  sqliteRotation,
} from './sqlite-rotation.js'

/**
 * The refresh of a live session on SQLite as ONE synchronous better-sqlite3 transaction
 * (sqlite-rotation.ts; docs/performance.md, "Refresh on SQLite"). The general path
 * (`rotateRefreshToken`, refresh.ts) runs the same statements through Kysely with an `await`
 * between each, and on SQLite's one connection every refresh then waits its turn for the
 * connection while the previous one's commit completes; here BEGIN to COMMIT runs without
 * yielding, with the statements prepared once on the raw handle.
 *
 * Only the happy path is done here: a live session, an active unexpired token, an enabled user,
 * under the per-session limit. Anything else rolls this transaction back, having changed nothing,
 * and the general path decides the presentation from the start (invalid, reuse detection, the
 * reuse-interval replay, the limit, a disabled user), so each of those rules has one
 * implementation (docs/refresh.md).
 *
 * Under a steady refresh load on a file the transaction moves to the refresh writer thread
 * (refresh-writer-thread.ts), which has a connection of its own: the main thread then only
 * parses, routes and answers, and the two threads share the work on two cores
 * (docs/performance.md, "Refresh on SQLite: the writer thread").
 */

export type SqliteRotationDeps = SessionDeps &
  AccessTokenDeps & {
    config: Pick<Config, 'rateLimits' | 'keyEncryptionKey' | 'sqliteRefreshThreadFrom'>
    /**
     * The handle `db` was opened from (the Tessera deps carry it): its raw better-sqlite3
     * connection when it is SQLite. Absent, or another database: no fast path.
     */
    database?: Pick<DatabaseHandle, 'db' | 'client'>
    /** Where a writer thread that failed is reported. */
    logger?: Pick<Logger, 'warn'>
  }

/**
 * Rotates `hash`'s token when this is SQLite and the happy path; undefined (nothing changed) for
 * the general path to decide. `now` and `signer` are the caller's, fetched before, as the general
 * path does (the key ring may read the database).
 */
export async function rotateOnSqlite(
  deps: SqliteRotationDeps,
  hash: string,
  now: number,
  signer: Signer,
  grant: AccessGrant | undefined,
): Promise<SqliteRotated | undefined> {
  const database = deps.database
  if (database === undefined || database.client.dialect !== 'sqlite' || database.db !== deps.db) {
    return undefined
  }
  const client = database.client
  const state = stateOf(client, database.db)
  const request = { hash, now, signer, grant }
  const thread = state.thread
  if (thread?.serving === true && state.threadFor === deps.config) return thread.rotate(request)
  if (thread === undefined) countTowardsThread(state, client, deps)

  // On the main thread. Another request's Kysely transaction is open on the one connection,
  // between two of its awaits: statements run now would become part of it (db/connect.ts,
  // `exclusive`). Or another thread of this process has the file's turn (the writer thread,
  // starting or finishing). The general path waits its turn instead. Otherwise nothing can
  // interleave with a transaction that never yields.
  if (client.sqlite.inTransaction) return undefined
  const turn = client.file?.turn
  if (turn !== undefined && !turn.tryTake()) return undefined
  try {
    return state.rotate.one(deps.config, request)
  } finally {
    turn?.give()
  }
}

interface HandleState {
  rotate: SqliteRotation
  thread: RefreshWriterThread | undefined
  /** The configuration the thread was given a copy of. */
  threadFor: unknown
  /** After a failed thread, none is started before this (performance.now()). */
  notBefore: number
  /** Fast-path refreshes on the main thread since `countedFrom` (performance.now()). */
  counted: number
  countedFrom: number
}

const states = new WeakMap<SqliteDatabase.Database, HandleState>()

/** How long after a failed writer thread refreshes stay on the main thread. */
const WRITER_RETRY_MS = 30_000

/** The rotation of one better-sqlite3 handle, made once. */
function stateOf(
  client: Extract<DatabaseClient, { dialect: 'sqlite' }>,
  db: NonNullable<SqliteRotationDeps['database']>['db'],
): HandleState {
  let state = states.get(client.sqlite)
  if (state === undefined) {
    state = {
      rotate: sqliteRotation(client.sqlite, db),
      thread: undefined,
      threadFor: undefined,
      notBefore: 0,
      counted: 0,
      countedFrom: 0,
    }
    states.set(client.sqlite, state)
    const made = state
    client.onClose(async () => {
      await made.thread?.stop()
    })
  }
  return state
}

function countTowardsThread(
  state: HandleState,
  client: Extract<DatabaseClient, { dialect: 'sqlite' }>,
  deps: SqliteRotationDeps,
): void {
  const file = client.file
  if (file === undefined) return
  const at = performance.now()
  if (at < state.notBefore) return
  if (at - state.countedFrom > 1000) {
    state.countedFrom = at
    state.counted = 0
  }
  // Below the configured rate (SQLITE_REFRESH_THREAD_FROM, 200 a second by default) the main
  // thread has time to spare, and the thread's start (a V8 instance, about 9 MB) and a message
  // each way per refresh would cost more than they give.
  const from = deps.config.sqliteRefreshThreadFrom
  if (from === 0 || ++state.counted < from) return
  const thread = startRefreshWriterThread(file, rotationConfigOf(deps.config), (failure) => {
    if (failure !== undefined) {
      // Not again at once: a thread that cannot start (its file missing, say) would otherwise be
      // started and fail about once a second under load.
      state.notBefore = performance.now() + WRITER_RETRY_MS
      deps.logger?.warn(
        { message: failure.message },
        'the refresh writer thread failed; refreshes run on the main thread',
      )
    }
    if (state.thread === thread) state.thread = undefined
    state.counted = 0
  })
  state.thread = thread
  state.threadFor = deps.config
}

/** Whether refreshes on this database go to the writer thread now (diagnostics, tests). */
export function refreshWriterThreadServing(database: Pick<DatabaseHandle, 'client'>): boolean {
  const client = database.client
  if (client.dialect !== 'sqlite') return false
  return states.get(client.sqlite)?.thread?.serving === true
}
