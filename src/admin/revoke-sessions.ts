import type { RecentAuthenticationDeps } from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { type ClientContext, revokeUserSessions } from '../sessions/sessions.js'
import { type Actor, actorName, assertActorInTransaction, authorizeAdminAction } from './actor.js'

/**
 * Ends every session of a user (API, browser, personal and job tokens), each through the
 * revocation log so verifiers refuse its access tokens within a second (docs/revocation.md).
 * The account stays enabled: its owner can log in again. On their own account a superuser ends
 * their other sessions, and keeps the one asking.
 */
export async function revokeSessionsOfUser(
  deps: RecentAuthenticationDeps,
  actor: Actor | null,
  userId: string,
  client: ClientContext,
): Promise<void> {
  await authorizeAdminAction(deps, actor, userId, { notOnSelf: false })
  await inTransaction(deps.db, async (tx) => {
    await assertActorInTransaction(tx, actor)
    const user = await tx
      .selectFrom('users')
      .select('id')
      .where('id', '=', userId)
      .executeTakeFirst()
    if (user === undefined) throw new TesseraError('not_found', 'No such user')
    const spared = actor?.userId === userId ? actor.sessionId : undefined
    await revokeUserSessions({ db: tx, clock: deps.clock }, userId, 'revoked_by_admin', spared)
    await recordAudit(tx, deps.clock, {
      event: 'sessions_revoked_by_admin',
      userId,
      ip: client.ip,
      detail: { by: actorName(actor) },
    })
  })
}
