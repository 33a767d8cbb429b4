import { randomBytes } from 'node:crypto'
import type { AccountDeps } from '../accounts/accounts.js'
import { forgetDevices } from '../accounts/devices.js'
import {
  federatedMail,
  type PasswordResetDeps,
  queueResetToken,
} from '../accounts/password-reset.js'
import type { RecentAuthenticationDeps } from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { enqueueMail } from '../mail/queue.js'
import { type ClientContext, revokeUserSessions } from '../sessions/sessions.js'
import { type Actor, actorName, assertActorInTransaction, authorizeAdminAction } from './actor.js'

export interface ForcePasswordResetDeps extends RecentAuthenticationDeps {
  hasher: AccountDeps['hasher']
  config: RecentAuthenticationDeps['config'] & PasswordResetDeps['config']
}

export type ForcedResetOutcome = 'reset_sent' | 'federated'

/**
 * Forces a password reset (a password believed leaked): the password stops working at once, every
 * session ends (through the revocation log), and the reset mail of src/accounts/password-reset.ts
 * is queued, in one transaction. The password is replaced by the hash of 32 random bytes nobody
 * holds rather than removed, so the account still counts as one with a password: when the mailed
 * link expires, the user asks for another on the forgot-password page. The credential version is
 * bumped (a login checked before it fails, older reset tokens are void) and the new token is bound
 * to the bumped version. A federated-only account has no password: its sessions end and the mail
 * says how it signs in.
 */
export async function forcePasswordReset(
  deps: ForcePasswordResetDeps,
  actor: Actor | null,
  userId: string,
  client: ClientContext,
): Promise<ForcedResetOutcome> {
  await authorizeAdminAction(deps, actor, userId, { notOnSelf: false })
  const unusable = await deps.hasher.hash(randomBytes(32).toString('base64url'))
  return inTransaction(deps.db, async (tx) => {
    await assertActorInTransaction(tx, actor)
    const user = await tx
      .updateTable('users')
      .set((eb) => ({
        password_hash: eb.case().when('password_hash', 'is', null).then(null).else(unusable).end(),
        credential_version: eb('credential_version', '+', 1),
        updated_at: deps.clock(),
      }))
      .where('id', '=', userId)
      .returningAll()
      .executeTakeFirst()
    if (user === undefined) throw new TesseraError('not_found', 'No such user')
    await revokeUserSessions({ db: tx, clock: deps.clock }, userId, 'password_reset')
    await forgetDevices(tx, userId)
    const outcome: ForcedResetOutcome = user.password_hash === null ? 'federated' : 'reset_sent'
    if (outcome === 'reset_sent') {
      await queueResetToken(tx, deps, user, Number(user.credential_version))
    } else {
      await enqueueMail(tx, deps.clock, await federatedMail({ ...deps, db: tx }, user))
    }
    await recordAudit(tx, deps.clock, {
      event: 'password_reset_forced',
      userId,
      ip: client.ip,
      detail: { by: actorName(actor), outcome },
    })
    return outcome
  })
}
