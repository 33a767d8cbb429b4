import type { Kysely } from 'kysely'
import type { Actor } from '../accounts/promotion.js'
import {
  type RecentAuthenticationDeps,
  requireRecentAuthentication,
} from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { type ClientContext, revokeUserSessions } from '../sessions/sessions.js'
import { assertSuperuserPowers } from './policy.js'

/**
 * Every second factor of a user, in the caller's transaction: TOTP, recovery codes, passkeys,
 * and the tickets and challenges waiting for them (an admin reset; an erasure).
 */
export async function resetSecondFactors(tx: Kysely<Database>, userId: string): Promise<void> {
  await tx.deleteFrom('totp_credentials').where('user_id', '=', userId).execute()
  await tx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
  await tx.deleteFrom('mfa_tickets').where('user_id', '=', userId).execute()
  await tx.deleteFrom('passkeys').where('user_id', '=', userId).execute()
  await tx.deleteFrom('webauthn_challenges').where('user_id', '=', userId).execute()
}

/**
 * An administrator's reset of another account's second factors (README, "Second factors"), for
 * a user who lost them: `actor` is a superuser with MFA and recent authentication (checked here,
 * so no caller can leave it out), or `null` for the operator on the server host (`tessera user
 * reset-mfa`). Audited with the reason. The user's sessions end too: whoever holds the lost
 * factor may hold one of them.
 */
export async function adminResetSecondFactors(
  t: RecentAuthenticationDeps & { config: Pick<Config, 'mfaRequiredFor'> },
  actor: (Actor & { amr?: readonly string[] | undefined }) | null,
  userId: string,
  reason: string,
  client: ClientContext,
): Promise<void> {
  if (actor !== null) {
    await assertSuperuserPowers(t, { sub: actor.userId, amr: actor.amr })
    await requireRecentAuthentication(t, actor.sessionId)
    if (actor.userId === userId) {
      throw new TesseraError(
        'forbidden',
        'Reset your own second factors from your account, not as an administrator',
      )
    }
  }
  await inTransaction(t.db, async (tx) => {
    const user = await tx
      .selectFrom('users')
      .select('id')
      .where('id', '=', userId)
      .executeTakeFirst()
    if (user === undefined) throw new TesseraError('not_found', 'No such user')
    await resetSecondFactors(tx, userId)
    await recordAudit(tx, t.clock, {
      event: 'mfa_reset',
      userId,
      ip: client.ip,
      detail: { by: actor?.userId ?? 'cli', reason },
    })
  })
  await revokeUserSessions(t, userId, 'mfa_reset')
}
