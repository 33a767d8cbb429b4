import { randomUUID } from 'node:crypto'
import type SqliteDatabase from 'better-sqlite3'
import type { Kysely } from 'kysely'
import type { Config } from '../config/index.js'
import type { DatabaseHandle } from '../db/connect.js'
import type { PreparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'
import type { Signer } from '../keys/key-ring.js'
import type { AccessTokenDeps } from '../tokens/access-token.js'
import type { AccessGrant } from '../tokens/grant.js'
import { type TokenPair, tokenPairSignedBy } from '../tokens/token-pair.js'
import { parseStoredAmr } from './amr.js'
import { generateRefreshToken } from './refresh-token.js'
import { forgetAnswer, keepAnswer, sealAnswer } from './replay.js'
import { claimToken, insertRefreshToken, lockSession, userById } from './rotation-statements.js'
import type { SessionDeps } from './sessions.js'

/**
 * The refresh of a live session on SQLite as ONE synchronous better-sqlite3 transaction
 * (docs/performance.md, "Refresh on SQLite"). The general path (`rotateRefreshToken`,
 * refresh.ts) runs the same statements through Kysely with an `await` between each, and on
 * SQLite's one connection every refresh then waits its turn for the connection while the
 * previous one's commit completes; here BEGIN to COMMIT runs without yielding, with the
 * statements prepared once on the raw handle.
 *
 * Only the happy path is done here: a live session, an active unexpired token, an enabled user,
 * under the per-session limit. Anything else rolls this transaction back, having changed nothing,
 * and the general path decides the presentation from the start (invalid, reuse detection, the
 * reuse-interval replay, the limit, a disabled user), so each of those rules has one
 * implementation (docs/refresh.md). Its statements are those of the general path
 * (rotation-statements.ts, replay.ts) in the same order, so the locks, the rows written and the
 * answer are the same.
 */

export type SqliteRotationDeps = SessionDeps &
  AccessTokenDeps & {
    config: Pick<Config, 'rateLimits' | 'keyEncryptionKey'>
    /**
     * The handle `db` was opened from (the Tessera deps carry it): its raw better-sqlite3
     * connection when it is SQLite. Absent, or another database: no fast path.
     */
    database?: Pick<DatabaseHandle, 'db' | 'client'>
  }

/** What `rotateRefreshToken` answers for a rotation (its `Refreshed`). */
export interface SqliteRotated {
  pair: TokenPair
  sessionId: string
  userId: string
  replayed: false
}

/** Thrown inside the transaction to roll it back: this presentation is the general path's. */
class NotTheHappyPath {}
const NOT_THE_HAPPY_PATH = new NotTheHappyPath()

/**
 * Rotates `hash`'s token when this is SQLite and the happy path; undefined (nothing changed) for
 * the general path to decide. `now` and `signer` are the caller's, fetched before, as the general
 * path does (the key ring may read the database).
 */
export function rotateOnSqlite(
  deps: SqliteRotationDeps,
  hash: string,
  now: number,
  signer: Signer,
  grant: AccessGrant | undefined,
): SqliteRotated | undefined {
  const database = deps.database
  if (database === undefined || database.client.dialect !== 'sqlite' || database.db !== deps.db) {
    return undefined
  }
  const { sqlite } = database.client
  // Another request's Kysely transaction is open on the one connection, between two of its
  // awaits: statements run now would become part of it (db/connect.ts, `exclusive`). The general
  // path waits for the connection instead. Otherwise nothing can interleave with a transaction
  // that never yields, so it needs no turn of Kysely's connection mutex.
  if (sqlite.inTransaction) return undefined
  try {
    return statementsOf(sqlite).rotate(deps, hash, now, signer, grant)
  } catch (error) {
    if (error === NOT_THE_HAPPY_PATH) return undefined
    throw error
  }
}

interface HandleState {
  prepared: Map<string, SqliteDatabase.Statement>
  rotate: (
    deps: SqliteRotationDeps,
    hash: string,
    now: number,
    signer: Signer,
    grant: AccessGrant | undefined,
  ) => SqliteRotated
}

const states = new WeakMap<SqliteDatabase.Database, HandleState>()

/** The statements and the transaction function of one better-sqlite3 handle, made once. */
function statementsOf(sqlite: SqliteDatabase.Database): HandleState {
  let state = states.get(sqlite)
  if (state !== undefined) return state
  const prepared = new Map<string, SqliteDatabase.Statement>()
  /** The SQL `query` compiles to on `db` (its dialect), prepared once on this handle. */
  const bound = <P, R>(db: Kysely<Database>, query: PreparedQuery<P, R>, params: P) => {
    const { sql, parameters } = query.bind(db, params)
    let statement = prepared.get(sql)
    if (statement === undefined) {
      statement = sqlite.prepare(sql)
      prepared.set(sql, statement)
    }
    return { statement, parameters }
  }
  const first = <P, R>(db: Kysely<Database>, query: PreparedQuery<P, R>, params: P) => {
    const { statement, parameters } = bound(db, query, params)
    return statement.get(parameters) as R | undefined
  }
  const run = <P, R>(db: Kysely<Database>, query: PreparedQuery<P, R>, params: P) => {
    const { statement, parameters } = bound(db, query, params)
    statement.run(parameters)
  }

  // IMMEDIATE: the transaction takes the write lock at BEGIN, as the general path's first
  // statement (a write) takes it, so it never upgrades from a read (docs/refresh.md, step 1).
  const rotate = sqlite.transaction(
    (
      deps: SqliteRotationDeps,
      hash: string,
      now: number,
      signer: Signer,
      grant: AccessGrant | undefined,
    ): SqliteRotated => {
      const db = deps.db
      const windowMs = deps.config.rateLimits.windowSeconds * 1000
      // docs/refresh.md, steps 1 and 2: lock the live session, claim the active token.
      const session = first(db, lockSession, { hash, now, windowOver: now - windowMs })
      if (session === undefined) throw NOT_THE_HAPPY_PATH
      const claimed = first(db, claimToken, { hash, familyId: session.id, now })
      if (claimed === undefined) throw NOT_THE_HAPPY_PATH
      // Step 3's refusals (over the limit, a missing or disabled user) are the general path's
      // (`issueChild`, refresh.ts): they roll back there too, so it answers them from scratch.
      const limit = deps.config.rateLimits.refreshPerSession
      if (limit > 0 && session.refresh_count > limit) throw NOT_THE_HAPPY_PATH
      const user = first(db, userById, { id: session.user_id })
      if (user === undefined || user.disabled !== 0) throw NOT_THE_HAPPY_PATH

      // The rest of step 3, as `issueChild` does it: the child, the signed answer, the parent
      // forgets its kept answer, the claimed token keeps this one for the reuse interval.
      const refreshExpiresAt = Math.min(
        now + deps.config.refreshTokenTtl * 1000,
        session.expires_at,
      )
      const child = generateRefreshToken()
      run(db, insertRefreshToken, {
        id: randomUUID(),
        familyId: session.id,
        userId: user.id,
        hash: child.hash,
        parentId: claimed.id,
        now,
        expiresAt: refreshExpiresAt,
      })
      // Signed synchronously: nothing in this transaction may await.
      const pair = tokenPairSignedBy(
        deps,
        signer,
        user,
        {
          sessionId: session.id,
          refreshToken: child.token,
          refreshExpiresAt,
          amr: parseStoredAmr(session.amr),
        },
        grant,
      )
      if (claimed.parent_id !== null) run(db, forgetAnswer, { id: claimed.parent_id })
      const interval = deps.config.refreshReuseInterval * 1000
      const kek = deps.config.keyEncryptionKey
      if (interval > 0 && kek !== undefined) {
        run(db, keepAnswer, {
          id: claimed.id,
          sealed: sealAnswer(kek, claimed.id, pair),
          until: now + interval,
        })
      }
      return { pair, sessionId: session.id, userId: user.id, replayed: false }
    },
  ).immediate
  state = { prepared, rotate }
  states.set(sqlite, state)
  return state
}
