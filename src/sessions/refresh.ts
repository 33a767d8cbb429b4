import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import { preparedQuery } from '../db/prepared.js'
import type { Database, User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { Metrics } from '../metrics.js'
import { generateRefreshToken, hashRefreshToken, looksLikeRefreshToken } from './refresh-token.js'
import { type ClientContext, type SessionDeps, revokeFamily } from './sessions.js'

export interface Rotation {
  user: User
  sessionId: string
  refreshToken: string
  refreshExpiresAt: number
}

type Outcome =
  | ({ kind: 'rotated' } & Rotation)
  | { kind: 'reused'; familyId: string; userId: string }
  | { kind: 'invalid' }

// The statements every successful refresh runs, compiled once (see db/prepared.ts).
const claimToken = preparedQuery((db, p: { hash: string; now: number }) =>
  db
    .updateTable('refresh_tokens')
    .set({ status: 'rotated', used_at: p.now })
    .where('token_hash', '=', p.hash)
    .where('status', '=', 'active')
    .where('expires_at', '>', p.now)
    .returning(['id', 'family_id']),
)
const sessionWithUser = preparedQuery((db, p: { familyId: string }) =>
  db
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .selectAll('u')
    .select(['s.expires_at as session_expires_at', 's.revoked_at as session_revoked_at'])
    .where('s.id', '=', p.familyId),
)
const insertChild = preparedQuery(
  (
    db,
    p: { id: string; familyId: string; userId: string; hash: string; parentId: string; now: number; expiresAt: number },
  ) =>
    db.insertInto('refresh_tokens').values({
      id: p.id,
      family_id: p.familyId,
      user_id: p.userId,
      token_hash: p.hash,
      parent_id: p.parentId,
      status: 'active',
      created_at: p.now,
      expires_at: p.expiresAt,
      used_at: null,
    }),
)
const touchSession = preparedQuery((db, p: { familyId: string; now: number }) =>
  db.updateTable('sessions').set({ last_used_at: p.now }).where('id', '=', p.familyId),
)

/**
 * Spends a refresh token and issues its successor in the same family (ARCHITECTURE.md, "The
 * refresh rule"; RFC 9700 §4.14.2).
 *
 * 1. Claim: one conditional UPDATE flips the token from `active` to `rotated`. Concurrent
 *    presentations of the same token, in one process or across replicas, race on that row and
 *    exactly one wins; the child is inserted in the same transaction.
 * 2. Not claimable and `rotated`: someone presents a spent token, which is theft or a client
 *    bug. Unless the reuse interval applies, the whole family is revoked, in its own transaction
 *    so the revocation commits although the request fails.
 * 3. Reuse interval (`REFRESH_REUSE_INTERVAL` seconds, 0 = strict): for clients that lost the
 *    response, a token rotated less than the interval ago may be presented again if its child is
 *    still the family's unused current token. That child is revoked (we keep only hashes, so it
 *    cannot be handed back) and a fresh one issued. Anything older is reuse.
 * 4. Unknown, expired or `revoked` (logout): `invalid_refresh_token`, nothing else revoked: a
 *    logged-out token replayed is not theft.
 */
export async function rotateRefreshToken(
  deps: SessionDeps & { metrics: Pick<Metrics, 'refreshes' | 'reuseDetections'> },
  presented: string,
  client: ClientContext,
): Promise<Rotation> {
  if (!looksLikeRefreshToken(presented)) {
    deps.metrics.refreshes.inc({ outcome: 'invalid' })
    throw new TesseraError('invalid_refresh_token')
  }
  const hash = hashRefreshToken(presented)
  const now = deps.clock()

  const outcome = await deps.db.transaction().execute(async (tx): Promise<Outcome> => {
    const claimed = await claimToken.first(tx, { hash, now })
    if (claimed !== undefined) return issueChild(deps, tx, claimed.family_id, claimed.id, now)

    const spent = await tx
      .selectFrom('refresh_tokens')
      .select(['id', 'family_id', 'user_id', 'status', 'used_at'])
      .where('token_hash', '=', hash)
      .executeTakeFirst()
    if (spent === undefined || spent.status !== 'rotated') return { kind: 'invalid' }

    const interval = deps.config.refreshReuseInterval * 1000
    if (interval > 0 && spent.used_at !== null && now < spent.used_at + interval) {
      // Lock the parent row first so concurrent retries queue here: under PostgreSQL's READ
      // COMMITTED the next statement then sees the child the previous retry committed.
      await tx.updateTable('refresh_tokens').set({ used_at: spent.used_at }).where('id', '=', spent.id).execute()
      const lostChild = await tx
        .updateTable('refresh_tokens')
        .set({ status: 'revoked' })
        .where('parent_id', '=', spent.id)
        .where('status', '=', 'active')
        .where('used_at', 'is', null)
        .returning('id')
        .executeTakeFirst()
      if (lostChild !== undefined) return issueChild(deps, tx, spent.family_id, spent.id, now)
    }
    return { kind: 'reused', familyId: spent.family_id, userId: spent.user_id }
  })

  deps.metrics.refreshes.inc({ outcome: outcome.kind })
  switch (outcome.kind) {
    case 'rotated': {
      const { kind: _, ...rotation } = outcome
      return rotation
    }
    case 'invalid':
      throw new TesseraError('invalid_refresh_token')
    case 'reused':
      deps.metrics.reuseDetections.inc()
      await revokeFamily(deps, outcome.familyId, 'refresh_token_reused')
      await recordAudit(deps.db, deps.clock, {
        event: 'refresh_reuse_detected',
        userId: outcome.userId,
        sessionId: outcome.familyId,
        ip: client.ip,
      })
      throw new TesseraError(
        'refresh_token_reused',
        'This refresh token was already used; the session has been revoked. Log in again.',
      )
  }
}

/** Inserts the next token of a live family and touches the session. */
async function issueChild(
  deps: SessionDeps,
  tx: Transaction<Database> | Kysely<Database>,
  familyId: string,
  parentId: string,
  now: number,
): Promise<Outcome> {
  const row = await sessionWithUser.first(tx, { familyId })
  if (
    row === undefined ||
    row.session_revoked_at !== null ||
    row.session_expires_at <= now ||
    row.disabled !== 0
  ) {
    return { kind: 'invalid' }
  }
  const { session_expires_at: sessionExpiresAt, session_revoked_at: _, ...user } = row
  const refreshExpiresAt = Math.min(now + deps.config.refreshTokenTtl * 1000, sessionExpiresAt)
  const { token, hash } = generateRefreshToken()
  await insertChild.execute(tx, {
    id: randomUUID(),
    familyId,
    userId: user.id,
    hash,
    parentId,
    now,
    expiresAt: refreshExpiresAt,
  })
  await touchSession.execute(tx, { familyId, now })
  return { kind: 'rotated', user, sessionId: familyId, refreshToken: token, refreshExpiresAt }
}
