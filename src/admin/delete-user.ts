import { eraseAccount } from '../accounts/erasure.js'
import type { RecentAuthenticationDeps } from '../accounts/reauthenticate.js'
import { inTransaction } from '../db/transaction.js'
import { type Actor, actorName, assertActorInTransaction, authorizeAdminAction } from './actor.js'

/**
 * Erases a user for a superuser (`DELETE /v1/admin/users/{id}`) or the operator (`tessera user
 * delete`): `eraseAccount` in the transaction that re-checks the actor. A superuser cannot erase
 * their own account here (they may through `DELETE /v1/user/me`).
 */
export async function deleteUser(
  deps: RecentAuthenticationDeps,
  actor: Actor | null,
  userId: string,
): Promise<void> {
  await authorizeAdminAction(deps, actor, userId, { notOnSelf: true })
  await inTransaction(deps.db, async (tx) => {
    await assertActorInTransaction(tx, actor)
    await eraseAccount({ db: tx, clock: deps.clock }, userId, actorName(actor))
  })
}
