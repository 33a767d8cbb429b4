import { getUser } from '../accounts/accounts.js'
import type { RecentAuthenticationDeps } from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import type { User } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import type { ClientContext } from '../sessions/sessions.js'
import { type Actor, actorName, assertActorInTransaction, authorizeAdminAction } from './actor.js'

/**
 * Sets a user's academic verification by hand, with the reason in the audit event (an institute
 * that vouches for someone without CILogon, or withdraws it). As CILogon does, verifying makes a
 * `regular` account `academic`; withdrawing makes an `academic` one `regular` again. Service and
 * superuser accounts keep their type.
 */
export async function setVerification(
  deps: RecentAuthenticationDeps,
  actor: Actor | null,
  userId: string,
  change: { verified: boolean; reason: string },
  client: ClientContext,
): Promise<User> {
  await authorizeAdminAction(deps, actor, userId, { notOnSelf: false })
  await inTransaction(deps.db, async (tx) => {
    await assertActorInTransaction(tx, actor)
    const before = await tx
      .selectFrom('users')
      .select(['account_type', 'verified'])
      .where('id', '=', userId)
      .executeTakeFirst()
    if (before === undefined) throw new TesseraError('not_found', 'No such user')
    const accountType =
      change.verified && before.account_type === 'regular'
        ? 'academic'
        : !change.verified && before.account_type === 'academic'
          ? 'regular'
          : before.account_type
    await tx
      .updateTable('users')
      .set({
        verified: change.verified ? 1 : 0,
        account_type: accountType,
        updated_at: deps.clock(),
      })
      .where('id', '=', userId)
      .execute()
    await recordAudit(tx, deps.clock, {
      event: 'verification_changed',
      userId,
      ip: client.ip,
      detail: { by: actorName(actor), verified: change.verified, reason: change.reason },
    })
  })
  return getUser(deps.db, userId)
}
