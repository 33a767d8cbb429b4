import { randomUUID } from 'node:crypto'
import { recordAudit } from '../audit/audit.js'
import type { Config } from '../config/index.js'
import { isUniqueViolation } from '../db/errors.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { enqueueMail } from '../mail/queue.js'
import { sealMailSecret } from '../mail/sealed.js'
import { accountKey, type RateLimits } from '../rate-limit/limits.js'
import type { ClientContext } from '../sessions/sessions.js'
import { type AccountDeps, findUserByEmail, getUser } from './accounts.js'
import { normalizeEmail } from './email.js'
import {
  CHANGE_TOKEN_TTL_SECONDS,
  claimEmailToken,
  invalidEmailToken,
  issueEmailToken,
  voidChange,
  voidEmailTokens,
} from './email-tokens.js'
import { normalizePassword } from './password-policy.js'
import { type RecentAuthenticationDeps, requireRecentAuthentication } from './reauthenticate.js'

export interface EmailChangeDeps extends AccountDeps {
  config: AccountDeps['config'] &
    Pick<Config, 'issuer' | 'keyEncryptionKey'> &
    RecentAuthenticationDeps['config']
  limits: Pick<RateLimits, 'passwordPerUser' | 'emailPerIp' | 'emailPerAddress'>
}

/** The page both links of an email change open (README, "Email verification and change"). */
export function emailChangeLink(config: Pick<Config, 'issuer'>, token: string): string {
  return `${config.issuer}/email-change?token=${token}`
}

export interface PendingEmailChange {
  email: string
  expiresAt: number
}

function emailTaken(): TesseraError {
  return new TesseraError('email_taken', 'An account with this email address already exists')
}

/**
 * Asks to move the account to a new address (README, "Email verification and change"). The
 * account proves itself first: with its current password (on the per-user budget a password
 * change uses), or, for an account without one, by a recent authentication (REAUTH_MAX_AGE). A
 * confirmation goes to the new address and a notice with a cancellation to the old one; nothing
 * changes until the confirmation. A new request voids the pending one. A taken address answers
 * `email_taken`, as registration does (a documented trade-off); it is checked again at the
 * confirmation, where the unique index decides.
 */
export async function requestEmailChange(
  t: EmailChangeDeps,
  session: { sub: string; sid: string },
  input: { email: string; currentPassword: string | undefined },
  client: ClientContext,
): Promise<PendingEmailChange> {
  const user = await getUser(t.db, session.sub)
  if (user.password_hash === null) {
    await requireRecentAuthentication(t, session.sid)
  } else {
    await t.limits.passwordPerUser.consume(user.id)
    const ok = await t.hasher.verify(
      user.password_hash,
      normalizePassword(input.currentPassword ?? ''),
    )
    if (!ok) throw new TesseraError('invalid_credentials', 'The current password is wrong')
    await t.limits.passwordPerUser.reset(user.id)
  }
  const next = normalizeEmail(input.email)
  if (next.normalized === user.email_normalized) {
    throw new TesseraError('validation_failed', 'This already is the account’s address', {
      errors: [{ field: 'email', message: 'is already the account’s address' }],
    })
  }
  await t.limits.emailPerIp.consume(client.ip ?? 'unknown')
  await t.limits.emailPerAddress.consume(accountKey(next.normalized))
  if (await findUserByEmail(t.db, next.normalized)) throw emailTaken()
  const changeId = randomUUID()
  return inTransaction(t.db, async (tx) => {
    await voidEmailTokens(tx, t.clock, user.id, ['change', 'cancel'])
    const token = { userId: user.id, email: next.email, changeId }
    const ttlSeconds = CHANGE_TOKEN_TTL_SECONDS
    const confirm = await issueEmailToken(tx, t.clock, { ...token, purpose: 'change', ttlSeconds })
    const cancel = await issueEmailToken(tx, t.clock, { ...token, purpose: 'cancel', ttlSeconds })
    const data = {
      old_email: user.email,
      new_email: next.email,
      expires_in_minutes: String(CHANGE_TOKEN_TTL_SECONDS / 60),
    }
    // Sealed in the queue, bound to their recipients, like every mailed secret.
    const sealed = (to: string, value: string) =>
      sealMailSecret(t.config.keyEncryptionKey, to, value)
    const mail = (to: string, token: string) => ({
      link: sealed(to, emailChangeLink(t.config, token)),
      code: sealed(to, token),
    })
    await enqueueMail(tx, t.clock, {
      to: next.email,
      template: 'email-change-confirm',
      data: { ...data, ...mail(next.email, confirm.token) },
    })
    await enqueueMail(tx, t.clock, {
      to: user.email,
      template: 'email-change-notice',
      data: { ...data, ...mail(user.email, cancel.token) },
    })
    await recordAudit(tx, t.clock, {
      event: 'email_change_requested',
      userId: user.id,
      sessionId: session.sid,
      ip: client.ip,
      detail: { new_email: next.email },
    })
    return { email: next.email, expiresAt: confirm.expiresAt }
  })
}

/**
 * The new address confirms: the account switches to it, verified, and the cancellation is spent,
 * in one transaction. Two accounts confirming one address at once: the unique index lets exactly
 * one commit; the other rolls back (its token stays unused) and answers `email_taken`.
 */
export async function confirmEmailChange(
  t: Pick<AccountDeps, 'db' | 'clock'>,
  token: string,
  client: ClientContext,
): Promise<string> {
  let userId: string | undefined
  try {
    return await inTransaction(t.db, async (tx) => {
      const row = await claimEmailToken(tx, t.clock, token, 'change')
      if (row === undefined || row.change_id === null) throw invalidEmailToken()
      userId = row.user_id
      const before = await getUser(tx, row.user_id)
      const next = normalizeEmail(row.email)
      await tx
        .updateTable('users')
        .set({
          email: next.email,
          email_normalized: next.normalized,
          email_verified: 1,
          updated_at: t.clock(),
        })
        .where('id', '=', row.user_id)
        .execute()
      await voidChange(tx, t.clock, row.change_id)
      // A verification mailed to the former address must not verify anything any more.
      await voidEmailTokens(tx, t.clock, row.user_id, ['verify'])
      await recordAudit(tx, t.clock, {
        event: 'email_changed',
        userId: row.user_id,
        ip: client.ip,
        detail: { old_email: before.email, new_email: next.email },
      })
      return row.user_id
    })
  } catch (error) {
    if (!isUniqueViolation(error)) throw error
    await recordAudit(t.db, t.clock, {
      event: 'email_change_refused',
      userId: userId ?? null,
      ip: client.ip,
      detail: { reason: 'email_taken' },
    })
    throw emailTaken()
  }
}

/**
 * The old address cancels a pending change: its confirmation is spent and the account keeps its
 * address. Once confirmed, the change can no longer be cancelled this way (the cancellation was
 * spent with it): the owner signs in and changes the address back, or asks an operator.
 */
export async function cancelEmailChange(
  t: Pick<AccountDeps, 'db' | 'clock'>,
  token: string,
  client: ClientContext,
): Promise<string> {
  return inTransaction(t.db, async (tx) => {
    const row = await claimEmailToken(tx, t.clock, token, 'cancel')
    if (row === undefined || row.change_id === null) throw invalidEmailToken()
    await voidChange(tx, t.clock, row.change_id)
    await recordAudit(tx, t.clock, {
      event: 'email_change_cancelled',
      userId: row.user_id,
      ip: client.ip,
      detail: { new_email: row.email },
    })
    return row.user_id
  })
}

/** The account's pending change, if any, for the account page. */
export async function pendingEmailChange(
  t: Pick<AccountDeps, 'db' | 'clock'>,
  userId: string,
): Promise<PendingEmailChange | undefined> {
  const row = await t.db
    .selectFrom('email_tokens')
    .select(['email', 'expires_at'])
    .where('user_id', '=', userId)
    .where('purpose', '=', 'change')
    .where('used_at', 'is', null)
    .where('expires_at', '>', t.clock())
    .executeTakeFirst()
  return row === undefined ? undefined : { email: row.email, expiresAt: row.expires_at }
}
