import { randomUUID } from 'node:crypto'
import type { Transaction } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { Signer } from '../keys/key-ring.js'
import type { Metrics } from '../metrics.js'
import type { AccessTokenDeps } from '../tokens/access-token.js'
import type { AccessGrant } from '../tokens/grant.js'
import { type TokenPair, tokenPairSignedBy } from '../tokens/token-pair.js'
import { parseStoredAmr } from './amr.js'
import { rotateOnPostgres } from './refresh-postgres.js'
import { rotateOnSqlite } from './refresh-sqlite.js'
import { generateRefreshToken, hashRefreshToken, looksLikeRefreshToken } from './refresh-token.js'
import { forgetAnswer, keepAnswer, openAnswer, sealAnswer } from './replay.js'
import {
  claimToken,
  insertRefreshToken,
  type LockedSession,
  lockSession,
  userById,
} from './rotation-statements.js'
import { type ClientContext, revokeFamily, type SessionDeps } from './sessions.js'

/** The answer of a refresh, and whose it is. */
export interface Refreshed {
  pair: TokenPair
  sessionId: string
  userId: string
  /** The pair is the one an earlier presentation of the same token got (the reuse interval). */
  replayed: boolean
}

export type RefreshDeps = SessionDeps &
  AccessTokenDeps & {
    config: Pick<Config, 'rateLimits' | 'keyEncryptionKey' | 'sqliteRefreshThreadFrom'>
    metrics: Pick<Metrics, 'refreshes' | 'reuseDetections'>
  }

type Outcome =
  | ({ kind: 'rotated' } & Refreshed)
  | ({ kind: 'replayed' } & Refreshed)
  /** `detected`: this presentation found the reuse and revoked the family (else it already was). */
  | { kind: 'reused'; familyId: string; userId: string; detected: boolean }
  | { kind: 'invalid' }
  | { kind: 'rate_limited'; retryAfter: number }

/** Thrown inside the transaction to roll it back and answer `outcome`: nothing is committed. */
class Rollback {
  constructor(readonly outcome: Outcome) {}
}

/**
 * Spends a refresh token and issues its successor in the same family, in one transaction
 * (docs/refresh.md states the rule; RFC 9700 §4.14.2).
 *
 * 1. Lock: the session of the presented token is write-locked first (`lockSession`). No live
 *    session (unknown token, logout, expiry, an earlier reuse): `invalid_refresh_token`, or
 *    `refresh_token_reused` again for a spent token of a family that reuse already revoked.
 * 2. Claim: a conditional UPDATE flips the token from `active` to `rotated`; under the session
 *    lock, of N concurrent presentations exactly one claims it. The child is inserted and the
 *    answer signed in the same transaction; the claimed token's parent forgets the answer it
 *    kept (its child is used now), and with a reuse interval the claimed token keeps this one,
 *    sealed, until the interval is over.
 * 3. Reuse interval (`REFRESH_REUSE_INTERVAL` seconds, 0 = strict): a token rotated less than the
 *    interval ago whose child is still unused answers again with the very answer its rotation
 *    gave (`replay.ts`): nothing is issued, spent or revoked, so a client that lost the response,
 *    or two processes presenting one token, converge on one child.
 * 4. Not claimable and `rotated` (otherwise) or `superseded`: a spent token presented again,
 *    which is theft or a client bug. The family is revoked in this transaction, which commits
 *    although the request fails.
 * 5. Anything that refuses after the lock (a `revoked` or expired token, a disabled user, the
 *    per-session limit) rolls back: nothing is spent, so the same token answers the same later.
 *    So does a replay, which changes nothing.
 *
 * `grant` is the new access token's audience and scopes (README, "Scripts, pipelines and
 * services"); the session has no audience of its own. A replay answers the kept answer, whatever
 * audience it asks for.
 */
export async function rotateRefreshToken(
  deps: RefreshDeps,
  presented: string,
  client: ClientContext,
  grant?: AccessGrant,
): Promise<Refreshed> {
  if (!looksLikeRefreshToken(presented)) {
    deps.metrics.refreshes.inc({ outcome: 'invalid' })
    throw new TesseraError('invalid_refresh_token')
  }
  const hash = hashRefreshToken(presented)
  const now = deps.clock()
  const windowMs = deps.config.rateLimits.windowSeconds * 1000
  // Fetched before the transaction: the key ring may read the database, and on SQLite the
  // transaction holds the one connection.
  const signer = await deps.keys.signer()
  // The happy path as each database does it fastest: on SQLite one synchronous transaction
  // (refresh-sqlite.ts), on PostgreSQL two round trips (refresh-postgres.ts). Every other
  // presentation, untouched by them, is decided below.
  const fast =
    (await rotateOnSqlite(deps, hash, now, signer, grant)) ??
    (await rotateOnPostgres(deps, hash, now, signer, grant))
  if (fast !== undefined) {
    deps.metrics.refreshes.inc({ outcome: 'rotated' })
    return fast
  }

  let outcome: Outcome
  try {
    outcome = await deps.db.transaction().execute(async (tx): Promise<Outcome> => {
      const session = await lockSession.first(tx, { hash, now, windowOver: now - windowMs })
      if (session === undefined) return presentedToDeadSession(tx, hash)

      const claimed = await claimToken.first(tx, { hash, familyId: session.id, now })
      if (claimed !== undefined) {
        return issueChild(deps, tx, signer, session, claimed, now, grant)
      }

      const spent = await tx
        .selectFrom('refresh_tokens')
        .select(['id', 'status', 'used_at', 'replay_sealed', 'replay_until'])
        .where('token_hash', '=', hash)
        .executeTakeFirstOrThrow()
      if (spent.status !== 'rotated' && spent.status !== 'superseded')
        throw new Rollback({ kind: 'invalid' })

      const replay = await keptAnswer(deps, tx, spent, now)
      if (replay !== undefined) {
        throw new Rollback({
          kind: 'replayed',
          pair: replay,
          sessionId: session.id,
          userId: session.user_id,
          replayed: true,
        })
      }

      await revokeFamily({ db: tx, clock: deps.clock }, session.id, 'refresh_token_reused')
      await recordAudit(tx, deps.clock, {
        event: 'refresh_reuse_detected',
        userId: session.user_id,
        sessionId: session.id,
        ip: client.ip,
      })
      return { kind: 'reused', familyId: session.id, userId: session.user_id, detected: true }
    })
  } catch (error) {
    if (!(error instanceof Rollback)) throw error
    outcome = error.outcome
  }

  deps.metrics.refreshes.inc({ outcome: outcome.kind })
  switch (outcome.kind) {
    case 'rotated':
    case 'replayed': {
      const { kind: _, ...refreshed } = outcome
      return refreshed
    }
    case 'invalid':
      throw new TesseraError('invalid_refresh_token')
    case 'rate_limited':
      throw new TesseraError(
        'rate_limited',
        `Too many refreshes of this session; try again in ${outcome.retryAfter} s`,
        {
          retryAfter: outcome.retryAfter,
        },
      )
    case 'reused':
      if (outcome.detected) deps.metrics.reuseDetections.inc()
      throw new TesseraError(
        'refresh_token_reused',
        'This refresh token was already used; the session has been revoked. Log in again.',
      )
  }
}

/**
 * The answer kept for a spent token, if presenting it again is a replay rather than reuse: it is
 * `rotated`, inside the interval (as configured now, so lowering the interval takes effect at
 * once), its sealed answer is still there (gone once the child was used or the family revoked)
 * and opens, and its child is still the family's unused token. Anything else is reuse.
 */
async function keptAnswer(
  deps: Pick<RefreshDeps, 'config'>,
  tx: Transaction<Database>,
  spent: {
    id: string
    status: string
    used_at: number | null
    replay_sealed: string | null
    replay_until: number | null
  },
  now: number,
): Promise<TokenPair | undefined> {
  const interval = deps.config.refreshReuseInterval * 1000
  const kek = deps.config.keyEncryptionKey
  if (
    spent.status !== 'rotated' ||
    interval === 0 ||
    kek === undefined ||
    spent.replay_sealed === null ||
    spent.replay_until === null ||
    spent.used_at === null ||
    now >= Math.min(spent.replay_until, spent.used_at + interval)
  ) {
    return undefined
  }
  const child = await tx
    .selectFrom('refresh_tokens')
    .select('id')
    .where('parent_id', '=', spent.id)
    .where('status', '=', 'active')
    .where('used_at', 'is', null)
    .executeTakeFirst()
  if (child === undefined) return undefined
  return openAnswer(kek, spent.id, spent.replay_sealed)
}

/**
 * A token whose session is not live. A spent token of a family that reuse revoked answers reuse
 * again (nothing left to revoke, no second event); everything else, including a token left
 * active in a session revoked otherwise, is just invalid.
 */
async function presentedToDeadSession(tx: Transaction<Database>, hash: string): Promise<Outcome> {
  const row = await tx
    .selectFrom('refresh_tokens as t')
    .innerJoin('sessions as s', 's.id', 't.family_id')
    .select(['t.status', 't.family_id', 't.user_id', 's.revoked_reason'])
    .where('t.token_hash', '=', hash)
    .executeTakeFirst()
  if (
    row !== undefined &&
    (row.status === 'rotated' || row.status === 'superseded') &&
    row.revoked_reason === 'refresh_token_reused'
  ) {
    return { kind: 'reused', familyId: row.family_id, userId: row.user_id, detected: false }
  }
  return { kind: 'invalid' }
}

/**
 * Inserts the next token of the locked family and signs the answer, or rolls back when the
 * refresh is refused. The claimed token's parent forgets its kept answer, and the claimed token
 * keeps this one for the reuse interval (docs/refresh.md, "The reuse interval").
 */
async function issueChild(
  deps: RefreshDeps,
  tx: Transaction<Database>,
  signer: Signer,
  session: LockedSession,
  claimed: { id: string; parent_id: string | null },
  now: number,
  grant: AccessGrant | undefined,
): Promise<Outcome> {
  const claimedId = claimed.id
  const parentId = claimed.parent_id
  const limit = deps.config.rateLimits.refreshPerSession
  if (limit > 0 && session.refresh_count > limit) {
    const windowEnd = session.refresh_window_start + deps.config.rateLimits.windowSeconds * 1000
    throw new Rollback({
      kind: 'rate_limited',
      retryAfter: Math.max(1, Math.ceil((windowEnd - now) / 1000)),
    })
  }
  const user = await userById.first(tx, { id: session.user_id })
  if (user === undefined || user.disabled !== 0) throw new Rollback({ kind: 'invalid' })
  const refreshExpiresAt = Math.min(now + deps.config.refreshTokenTtl * 1000, session.expires_at)
  const { token, hash } = generateRefreshToken()
  await insertRefreshToken.execute(tx, {
    id: randomUUID(),
    familyId: session.id,
    userId: user.id,
    hash,
    parentId: claimedId,
    now,
    expiresAt: refreshExpiresAt,
  })
  const pair = tokenPairSignedBy(
    deps,
    signer,
    user,
    {
      sessionId: session.id,
      refreshToken: token,
      refreshExpiresAt,
      // From the session row the lock returned: a refreshed token says what the login proved.
      amr: parseStoredAmr(session.amr),
    },
    grant,
  )
  if (parentId !== null) await forgetAnswer.execute(tx, { id: parentId })
  const interval = deps.config.refreshReuseInterval * 1000
  const kek = deps.config.keyEncryptionKey
  if (interval > 0 && kek !== undefined) {
    await keepAnswer.execute(tx, {
      id: claimedId,
      sealed: sealAnswer(kek, claimedId, pair),
      until: now + interval,
    })
  }
  return { kind: 'rotated', pair, sessionId: session.id, userId: user.id, replayed: false }
}
