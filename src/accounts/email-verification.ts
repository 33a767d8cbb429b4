import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database, User } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { enqueueMail } from '../mail/queue.js'
import { sealMailSecret } from '../mail/sealed.js'
import { accountKey, type RateLimits } from '../rate-limit/limits.js'
import type { ClientContext } from '../sessions/sessions.js'
import { normalizeEmail } from './email.js'
import {
  claimEmailToken,
  invalidEmailToken,
  issueEmailToken,
  VERIFY_TOKEN_TTL_SECONDS,
  voidEmailTokens,
} from './email-tokens.js'
import { type MailRequest, queueMailRequest } from './mail-requests.js'

export interface VerificationMailDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'issuer' | 'keyEncryptionKey'>
}

export interface VerificationRequestDeps extends VerificationMailDeps {
  limits: Pick<RateLimits, 'emailPerIp' | 'emailPerAddress'>
}

/**
 * The page a mailed link opens. The token rides in the query only as far as that page, which
 * moves it into a cookie and out of the address bar at once (README, "Email verification and
 * change"); Tessera's request log records paths only. The queue holds it sealed.
 */
export function verifyEmailLink(config: Pick<Config, 'issuer'>, token: string): string {
  return `${config.issuer}/verify-email?token=${token}`
}

/**
 * Mails a verification link and code to the user's current address, voiding the earlier ones,
 * inside the caller's transaction: the mail is queued if and only if the change commits.
 */
export async function mailVerification(
  t: VerificationMailDeps,
  user: Pick<User, 'id' | 'email'>,
  client: ClientContext,
): Promise<void> {
  await inTransaction(t.db, async (tx) => {
    await voidEmailTokens(tx, t.clock, user.id, ['verify'])
    const { token } = await issueEmailToken(tx, t.clock, {
      userId: user.id,
      purpose: 'verify',
      email: user.email,
      changeId: null,
      ttlSeconds: VERIFY_TOKEN_TTL_SECONDS,
    })
    // Sealed in the queue like every mailed secret (src/mail/sealed.ts).
    const sealed = (value: string) => sealMailSecret(t.config.keyEncryptionKey, user.email, value)
    await enqueueMail(tx, t.clock, {
      to: user.email,
      template: 'verify-email',
      data: {
        email: user.email,
        link: sealed(verifyEmailLink(t.config, token)),
        code: sealed(token),
        expires_in_hours: String(VERIFY_TOKEN_TTL_SECONDS / 3600),
      },
    })
    await recordAudit(tx, t.clock, {
      event: 'email_verification_sent',
      userId: user.id,
      ip: client.ip,
    })
  })
}

/**
 * "Send again": mails a new verification to `email` if it names an enabled account whose address
 * is not verified yet. The caller answers the same whatever happened here (202), so the answer
 * tells no one which addresses have accounts; nor does its time, since the address is looked up
 * only after the answer: this counts the request per client address and per recipient (hashed),
 * so it cannot be used to flood a mailbox (either budget refills after RATE_LIMIT_WINDOW, and
 * signing in does not depend on it), and queues one request row of one shape, which the server's
 * background pass resolves (`resolveVerificationInTransaction`; README, "Password reset").
 */
export async function requestVerificationMail(
  t: Pick<VerificationRequestDeps, 'db' | 'clock' | 'limits'>,
  email: string,
  client: ClientContext,
): Promise<void> {
  const { email: typed, normalized } = normalizeEmail(email)
  await t.limits.emailPerIp.consume(client.ip ?? 'unknown')
  await t.limits.emailPerAddress.consume(accountKey(normalized))
  await queueMailRequest(t.db, t.clock, {
    kind: 'verify_email',
    email: typed,
    email_normalized: normalized,
    ip: client.ip,
  })
}

/** The account's part of a "send again", after the answer (src/accounts/mail-request-pass.ts). */
export async function resolveVerificationInTransaction(
  tx: Kysely<Database>,
  t: VerificationMailDeps,
  request: Pick<MailRequest, 'email_normalized' | 'ip'>,
): Promise<'sent' | 'not_sent'> {
  const user = await tx
    .selectFrom('users')
    .select(['id', 'email', 'email_verified', 'disabled'])
    .where('email_normalized', '=', request.email_normalized)
    .executeTakeFirst()
  if (user === undefined || user.email_verified === 1 || user.disabled !== 0) return 'not_sent'
  await mailVerification({ ...t, db: tx }, user, { ip: request.ip, userAgent: null })
  return 'sent'
}

/**
 * Redeems a verification token: marks the address verified if it is still the account's address
 * (a token mailed to a former address proves nothing about the current one). Unknown, used,
 * expired and stale tokens answer the same `invalid_email_token`. Answers the user's id.
 */
export async function verifyEmail(
  t: Pick<VerificationMailDeps, 'db' | 'clock'>,
  token: string,
  client: ClientContext,
): Promise<string> {
  return inTransaction(t.db, async (tx) => {
    const row = await claimEmailToken(tx, t.clock, token, 'verify')
    if (row === undefined) throw invalidEmailToken()
    const updated = await tx
      .updateTable('users')
      .set({ email_verified: 1, updated_at: t.clock() })
      .where('id', '=', row.user_id)
      .where('email_normalized', '=', normalizeEmail(row.email).normalized)
      .executeTakeFirst()
    if (updated.numUpdatedRows === 0n) throw invalidEmailToken()
    await recordAudit(tx, t.clock, { event: 'email_verified', userId: row.user_id, ip: client.ip })
    return row.user_id
  })
}
