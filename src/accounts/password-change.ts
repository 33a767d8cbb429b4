import { recordAudit } from '../audit/audit.js'
import { TesseraError } from '../errors.js'
import type { RateLimits } from '../rate-limit/limits.js'
import { type ClientContext, revokeUserSessions } from '../sessions/sessions.js'
import { type AccountDeps, getUser, passwordPolicy } from './accounts.js'
import { checkPasswordPolicy, normalizePassword } from './password-policy.js'

export interface PasswordChangeDeps extends AccountDeps {
  limits: Pick<RateLimits, 'passwordPerUser'>
}

/**
 * The owner of a live session sets a new password: the current one is checked, the new one set
 * and every other session of the user ended (whoever knew the old password is logged out, ASVS
 * 7.4), with its audit event, in one transaction. The update requires the credential version the
 * check saw and bumps it, so a concurrent change wins once and a login checked against the old
 * password cannot open a session afterwards (`startSession`).
 *
 * Guessing the current password with a stolen access token is limited per user, on the budget
 * re-authentication shares and apart from the login one: failed logins by others must not block
 * the owner here (README, "Passwords and login").
 */
export async function changePassword(
  deps: PasswordChangeDeps,
  session: { sub: string; sid: string },
  passwords: { current: string; next: string },
  client: ClientContext,
): Promise<void> {
  await deps.limits.passwordPerUser.consume(session.sub)
  const user = await getUser(deps.db, session.sub)
  const current = normalizePassword(passwords.current)
  const ok =
    user.password_hash === null
      ? await deps.hasher.verifyDummy(current)
      : await deps.hasher.verify(user.password_hash, current)
  if (!ok) throw new TesseraError('invalid_credentials', 'The current password is wrong')
  const next = checkPasswordPolicy(passwords.next, passwordPolicy(deps))
  const hash = await deps.hasher.hash(next)
  await deps.db.transaction().execute(async (tx) => {
    const result = await tx
      .updateTable('users')
      .set((eb) => ({
        password_hash: hash,
        updated_at: deps.clock(),
        credential_version: eb('credential_version', '+', 1),
      }))
      .where('id', '=', user.id)
      .where('credential_version', '=', user.credential_version)
      .executeTakeFirst()
    if (result.numUpdatedRows === 0n) {
      throw new TesseraError('invalid_credentials', 'The password changed meanwhile; try again')
    }
    await revokeUserSessions(
      { db: tx, clock: deps.clock },
      user.id,
      'password_changed',
      session.sid,
    )
    await recordAudit(tx, deps.clock, {
      event: 'password_changed',
      userId: user.id,
      sessionId: session.sid,
      ip: client.ip,
    })
  })
  await deps.limits.passwordPerUser.reset(user.id)
}
