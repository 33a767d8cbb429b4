import type { Kysely } from 'kysely'
import { assertSuperuser } from '../accounts/accounts.js'
import type { Actor } from '../accounts/promotion.js'
import {
  type RecentAuthenticationDeps,
  requireRecentAuthentication,
} from '../accounts/reauthenticate.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'

export type { Actor }

/**
 * Who an admin action's audit event names (`detail.by`): the superuser's id, or `cli` for the
 * operator on the server host.
 */
export function actorName(actor: Actor | null): string {
  return actor?.userId ?? 'cli'
}

/**
 * The checks every state-changing admin action makes before its transaction, as promotion does
 * (src/accounts/promotion.ts): an enabled superuser whose session proved the account within
 * REAUTH_MAX_AGE, since a stolen access token must not be able to lock people out or erase them
 * (README, "Recent authentication"). `null` is the operator on the server host. With
 * `notOnSelf`, a superuser may not aim the action at their own account (`cannot_target_self`):
 * an institute must not lock itself out by one mistaken call (README, "Operating Tessera").
 */
export async function authorizeAdminAction(
  deps: RecentAuthenticationDeps,
  actor: Actor | null,
  userId: string,
  options: { notOnSelf: boolean },
): Promise<void> {
  if (actor === null) return
  await assertSuperuser(deps.db, actor.userId)
  if (options.notOnSelf && actor.userId === userId) {
    throw new TesseraError(
      'cannot_target_self',
      'A superuser may not do this to their own account; ask another superuser or use the CLI',
    )
  }
  await requireRecentAuthentication(deps, actor.sessionId)
}

/** Re-checked inside the change's transaction, so a demotion committed meanwhile wins. */
export async function assertActorInTransaction(
  tx: Kysely<Database>,
  actor: Actor | null,
): Promise<void> {
  if (actor !== null) await assertSuperuser(tx, actor.userId)
}

/** A reason an operator gives for a change to a person's account: kept in the audit event. */
export const REASON_MAX_LENGTH = 500
