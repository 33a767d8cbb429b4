import { recordAudit } from '../audit/audit.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { hashRefreshToken, looksLikeRefreshToken } from './refresh-token.js'
import {
  type ClientContext,
  revokeFamily,
  revokeUserSessions,
  type SessionDeps,
} from './sessions.js'

// The ways a user ends sessions: each revocation and its audit event commit together.

type RevocationDeps = Pick<SessionDeps, 'db' | 'clock'>

/**
 * Logout by refresh token: revokes the token's family whatever state it is in. Unknown or
 * malformed tokens are not an error (logout is idempotent and must not become an oracle).
 */
export async function logout(
  deps: RevocationDeps,
  refreshToken: string,
  client: ClientContext,
): Promise<void> {
  if (!looksLikeRefreshToken(refreshToken)) return
  const row = await deps.db
    .selectFrom('refresh_tokens')
    .select(['family_id', 'user_id'])
    .where('token_hash', '=', hashRefreshToken(refreshToken))
    .executeTakeFirst()
  if (row === undefined) return
  await inTransaction(deps.db, async (tx) => {
    await revokeFamily({ db: tx, clock: deps.clock }, row.family_id, 'logout')
    await recordAudit(tx, deps.clock, {
      event: 'logout',
      userId: row.user_id,
      sessionId: row.family_id,
      ip: client.ip,
    })
  })
}

/** Ends every session of the user, the caller's own included. */
export async function logoutAll(
  deps: RevocationDeps,
  userId: string,
  client: ClientContext,
): Promise<void> {
  await inTransaction(deps.db, async (tx) => {
    await revokeUserSessions({ db: tx, clock: deps.clock }, userId, 'logout_all')
    await recordAudit(tx, deps.clock, { event: 'logout_all', userId, ip: client.ip })
  })
}

/** Revokes one of the user's own sessions; someone else's session is "not found". */
export async function deleteSession(
  deps: RevocationDeps,
  userId: string,
  sessionId: string,
  client: ClientContext,
): Promise<void> {
  const session = await deps.db
    .selectFrom('sessions')
    .select(['id'])
    .where('id', '=', sessionId)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst()
  if (session === undefined) throw new TesseraError('not_found', 'No such live session')
  await inTransaction(deps.db, async (tx) => {
    await revokeFamily({ db: tx, clock: deps.clock }, sessionId, 'session_deleted')
    await recordAudit(tx, deps.clock, {
      event: 'session_revoked',
      userId,
      sessionId,
      ip: client.ip,
    })
  })
}
