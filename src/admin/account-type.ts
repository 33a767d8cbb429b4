import { getUser } from '../accounts/accounts.js'
import type { RecentAuthenticationDeps } from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import type { AccountType, User } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import type { ClientContext } from '../sessions/sessions.js'
import { type Actor, actorName, assertActorInTransaction, authorizeAdminAction } from './actor.js'

export const ACCOUNT_TYPES: readonly AccountType[] = ['regular', 'academic', 'service', 'superuser']

/**
 * Sets a user's account type, with the reason in the audit event. Every type but `regular` is
 * verified (as registration, promotion and CILogon make them); `regular` keeps its flag. The
 * type is read from the database by every rule that depends on it (`assertSuperuser`, a refresh),
 * so a demotion takes away admin power at once; access tokens already issued keep their `acct`
 * claim until they expire (ACCESS_TOKEN_TTL). A superuser cannot change their own type.
 */
export async function setAccountType(
  deps: RecentAuthenticationDeps,
  actor: Actor | null,
  userId: string,
  change: { accountType: AccountType; reason: string },
  client: ClientContext,
): Promise<User> {
  await authorizeAdminAction(deps, actor, userId, { notOnSelf: true })
  await inTransaction(deps.db, async (tx) => {
    await assertActorInTransaction(tx, actor)
    const before = await tx
      .selectFrom('users')
      .select('account_type')
      .where('id', '=', userId)
      .executeTakeFirst()
    if (before === undefined) throw new TesseraError('not_found', 'No such user')
    await tx
      .updateTable('users')
      .set((eb) => ({
        account_type: change.accountType,
        verified: change.accountType === 'regular' ? eb.ref('verified') : 1,
        updated_at: deps.clock(),
      }))
      .where('id', '=', userId)
      .execute()
    await recordAudit(tx, deps.clock, {
      event: 'account_type_changed',
      userId,
      ip: client.ip,
      detail: {
        by: actorName(actor),
        from: before.account_type,
        to: change.accountType,
        reason: change.reason,
      },
    })
  })
  return getUser(deps.db, userId)
}
