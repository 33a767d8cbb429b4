import { setDisabled } from '../accounts/accounts.js'
import type { RecentAuthenticationDeps } from '../accounts/reauthenticate.js'
import { inTransaction } from '../db/transaction.js'
import type { ClientContext } from '../sessions/sessions.js'
import { type Actor, actorName, assertActorInTransaction, authorizeAdminAction } from './actor.js'

/**
 * Disables or enables a user for a superuser (`POST /v1/admin/users/{id}/disable`, `.../enable`)
 * or the operator (`tessera user disable|enable`). Disabling ends every session and revokes the
 * user's tokens through the revocation log (`setDisabled`); the audit event names the actor and
 * the reason. A superuser cannot disable themself.
 */
export async function changeAccountStatus(
  deps: RecentAuthenticationDeps,
  actor: Actor | null,
  userId: string,
  change: { disabled: boolean; reason: string | null },
  client: ClientContext,
): Promise<void> {
  await authorizeAdminAction(deps, actor, userId, { notOnSelf: change.disabled })
  await inTransaction(deps.db, async (tx) => {
    await assertActorInTransaction(tx, actor)
    await setDisabled({ db: tx, clock: deps.clock }, userId, change.disabled, {
      ip: client.ip,
      detail: { by: actorName(actor), reason: change.reason },
    })
  })
}
