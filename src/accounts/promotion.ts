import { recordAudit } from '../audit/audit.js'
import type { User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { ClientContext } from '../sessions/sessions.js'
import { assertSuperuser, getUser } from './accounts.js'
import { type RecentAuthenticationDeps, requireRecentAuthentication } from './reauthenticate.js'

/** The superuser asking, by the session of their access token. */
export interface Actor {
  userId: string
  sessionId: string
}

/**
 * Makes a user a superuser. `actor` is the superuser asking: an enabled superuser (checked here,
 * in the transaction of the change, so no caller can leave it out) whose session proved the
 * account within REAUTH_MAX_AGE, since granting superuser is a lasting way in that a stolen
 * access token must not hand out (docs/security.md, "Recent authentication"). `null` is the
 * operator on the server host (`tessera user promote`).
 */
export async function promoteToSuperuser(
  deps: RecentAuthenticationDeps,
  actor: Actor | null,
  userId: string,
  client: ClientContext,
): Promise<User> {
  if (actor !== null) {
    await assertSuperuser(deps.db, actor.userId)
    await requireRecentAuthentication(deps, actor.sessionId)
  }
  await deps.db.transaction().execute(async (tx) => {
    if (actor !== null) await assertSuperuser(tx, actor.userId)
    const result = await tx
      .updateTable('users')
      .set({ account_type: 'superuser', verified: 1, updated_at: deps.clock() })
      .where('id', '=', userId)
      .executeTakeFirst()
    if (result.numUpdatedRows === 0n) throw new TesseraError('not_found', 'No such user')
    await recordAudit(tx, deps.clock, {
      event: 'user_promoted',
      userId,
      ip: client.ip,
      detail: { by: actor?.userId ?? 'cli' },
    })
  })
  return getUser(deps.db, userId)
}
