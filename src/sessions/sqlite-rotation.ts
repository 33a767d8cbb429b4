import { randomUUID } from 'node:crypto'
import type SqliteDatabase from 'better-sqlite3'
import type { Kysely } from 'kysely'
import type { Config } from '../config/index.js'
import type { PreparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'
import type { Signer } from '../keys/key-ring.js'
import type { AccessGrant } from '../tokens/grant.js'
import { type TokenPair, tokenPairSignedBy } from '../tokens/token-pair.js'
import { parseStoredAmr } from './amr.js'
import { generateRefreshToken } from './refresh-token.js'
import { forgetAnswer, keepAnswer, sealAnswer } from './replay.js'
import { claimToken, insertRefreshToken, lockSession, userById } from './rotation-statements.js'

/**
 * The happy path of a refresh on SQLite as ONE synchronous better-sqlite3 transaction, the same
 * function on whichever thread runs it: the main thread (refresh-sqlite.ts) or the refresh writer
 * thread (refresh-writer.ts). Its statements are those of the general path (rotation-statements.ts,
 * replay.ts) in the same order, so the locks, the rows written and the answer are the same
 * (docs/performance.md, "Refresh on SQLite").
 */

/** What the rotation reads of the configuration: plain values, so a worker can be given them. */
export type RotationConfig = Pick<
  Config,
  | 'refreshTokenTtl'
  | 'refreshReuseInterval'
  | 'keyEncryptionKey'
  | 'issuer'
  | 'audience'
  | 'audiences'
  | 'scopes'
  | 'accessTokenTtl'
  | 'jobTokenMaxTtl'
> & { rateLimits: Pick<Config['rateLimits'], 'windowSeconds' | 'refreshPerSession'> }

export function rotationConfigOf(config: RotationConfig): RotationConfig {
  return {
    refreshTokenTtl: config.refreshTokenTtl,
    refreshReuseInterval: config.refreshReuseInterval,
    keyEncryptionKey: config.keyEncryptionKey,
    issuer: config.issuer,
    audience: config.audience,
    audiences: config.audiences,
    scopes: config.scopes,
    accessTokenTtl: config.accessTokenTtl,
    jobTokenMaxTtl: config.jobTokenMaxTtl,
    rateLimits: {
      windowSeconds: config.rateLimits.windowSeconds,
      refreshPerSession: config.rateLimits.refreshPerSession,
    },
  }
}

/** One presentation: the token's hash, the caller's time and signer, the grant asked for. */
export interface RotationRequest {
  hash: string
  now: number
  signer: Signer
  grant: AccessGrant | undefined
}

/** What `rotateRefreshToken` answers for a rotation (its `Refreshed`). */
export interface SqliteRotated {
  pair: TokenPair
  sessionId: string
  userId: string
  replayed: false
}

/** Takes no turn: the caller holds the file's (src/db/writer-turn.ts). */
export interface SqliteRotation {
  /**
   * Rotates the request's token when this is the happy path; undefined (rolled back, nothing
   * changed) for the general path to decide.
   */
  one(config: RotationConfig, request: RotationRequest): SqliteRotated | undefined
  /**
   * Several presentations in ONE transaction, each in a savepoint of its own: one answer (or
   * its error) per request, in order, all committed together (docs/performance.md, "Refresh on
   * SQLite: the writer thread"). A request sees the ones before it, as it would one after the
   * other: a second presentation of a token the batch just rotated is the general path's.
   */
  many(
    config: RotationConfig,
    requests: readonly RotationRequest[],
  ): (SqliteRotated | undefined | Error)[]
}

/** Thrown inside the transaction to roll it back: this presentation is the general path's. */
class NotTheHappyPath {}
const NOT_THE_HAPPY_PATH = new NotTheHappyPath()

/**
 * The rotation on `sqlite`, its statements prepared once on it. `db` is a Kysely view of the same
 * database, only to compile the statements for SQLite (`bind`, src/db/prepared.ts).
 */
export function sqliteRotation(
  sqlite: SqliteDatabase.Database,
  db: Kysely<Database>,
): SqliteRotation {
  const prepared = new Map<string, SqliteDatabase.Statement>()
  /** The SQL `query` compiles to on `db` (its dialect), prepared once on this handle. */
  const bound = <P, R>(query: PreparedQuery<P, R>, params: P) => {
    const { sql, parameters } = query.bind(db, params)
    let statement = prepared.get(sql)
    if (statement === undefined) {
      statement = sqlite.prepare(sql)
      prepared.set(sql, statement)
    }
    return { statement, parameters }
  }
  const first = <P, R>(query: PreparedQuery<P, R>, params: P) => {
    const { statement, parameters } = bound(query, params)
    return statement.get(parameters) as R | undefined
  }
  const run = <P, R>(query: PreparedQuery<P, R>, params: P) => {
    const { statement, parameters } = bound(query, params)
    statement.run(parameters)
  }

  // IMMEDIATE: the transaction takes the write lock at BEGIN, as the general path's first
  // statement (a write) takes it, so it never upgrades from a read (docs/refresh.md, step 1).
  const rotate = sqlite.transaction(
    (config: RotationConfig, { hash, now, signer, grant }: RotationRequest): SqliteRotated => {
      const windowMs = config.rateLimits.windowSeconds * 1000
      // docs/refresh.md, steps 1 and 2: lock the live session, claim the active token.
      const session = first(lockSession, { hash, now, windowOver: now - windowMs })
      if (session === undefined) throw NOT_THE_HAPPY_PATH
      const claimed = first(claimToken, { hash, familyId: session.id, now })
      if (claimed === undefined) throw NOT_THE_HAPPY_PATH
      // Step 3's refusals (over the limit, a missing or disabled user) are the general path's
      // (`issueChild`, refresh.ts): they roll back there too, so it answers them from scratch.
      const limit = config.rateLimits.refreshPerSession
      if (limit > 0 && session.refresh_count > limit) throw NOT_THE_HAPPY_PATH
      const user = first(userById, { id: session.user_id })
      if (user === undefined || user.disabled !== 0) throw NOT_THE_HAPPY_PATH

      // The rest of step 3, as `issueChild` does it: the child, the signed answer, the parent
      // forgets its kept answer, the claimed token keeps this one for the reuse interval.
      const refreshExpiresAt = Math.min(now + config.refreshTokenTtl * 1000, session.expires_at)
      const child = generateRefreshToken()
      run(insertRefreshToken, {
        id: randomUUID(),
        familyId: session.id,
        userId: user.id,
        hash: child.hash,
        parentId: claimed.id,
        now,
        expiresAt: refreshExpiresAt,
      })
      // Signed synchronously: nothing in this transaction may await. At the request's time, so a
      // thread needs no clock of its own.
      const pair = tokenPairSignedBy(
        { clock: () => now, config },
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
      if (claimed.parent_id !== null) run(forgetAnswer, { id: claimed.parent_id })
      const interval = config.refreshReuseInterval * 1000
      const kek = config.keyEncryptionKey
      if (interval > 0 && kek !== undefined) {
        run(keepAnswer, {
          id: claimed.id,
          sealed: sealAnswer(kek, claimed.id, pair),
          until: now + interval,
        })
      }
      return { pair, sessionId: session.id, userId: user.id, replayed: false }
    },
  ).immediate
  const one = (config: RotationConfig, request: RotationRequest) => {
    try {
      return rotate(config, request)
    } catch (error) {
      if (error === NOT_THE_HAPPY_PATH) return undefined
      throw error
    }
  }
  // Called inside this outer transaction, better-sqlite3 runs `rotate` as a savepoint, which its
  // throw rolls back alone. Some errors (SQLITE_FULL, IOERR, NOMEM, INTERRUPT) make SQLite roll
  // back the whole transaction instead: then nothing of the batch stands, and the presentations
  // after this one must not run, each committing on its own, so the batch fails as a whole.
  const many = sqlite.transaction((config: RotationConfig, requests: readonly RotationRequest[]) =>
    requests.map((request) => {
      try {
        return one(config, request)
      } catch (error) {
        if (!sqlite.inTransaction) throw error
        return error instanceof Error ? error : new Error(String(error))
      }
    }),
  ).immediate
  return { one, many }
}
