import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Config } from '../config/index.js'
import type { Database, User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import { PROVIDERS } from '../federation/provider-table.js'
import { enqueueMail, type QueuedMail } from '../mail/queue.js'
import { sealMailSecret } from '../mail/sealed.js'
import { addressBucket } from '../rate-limit/address-bucket.js'
import { accountKey, type RateLimits } from '../rate-limit/limits.js'
import { type ClientContext, revokeUserSessions } from '../sessions/sessions.js'
import { type AccountDeps, findUserByEmail, listIdentities, passwordPolicy } from './accounts.js'
import { forgetDevices } from './devices.js'
import { normalizeEmail } from './email.js'
import { type MailRequest, queueMailRequest } from './mail-requests.js'
import { checkPasswordPolicy } from './password-policy.js'

/**
 * Password reset (README, "Password reset"). A request mails a link to the reset page and the
 * same token as a code for the API; the token is 32 random bytes, stored as its SHA-256, valid 30
 * minutes, once. It is bound to the credential version it was issued under, so any password
 * change voids it, and a newer request deletes the older tokens.
 */
export const RESET_TTL_MS = 30 * 60_000
const TOKEN_PREFIX = 'tessera_pr_'

export interface PasswordResetDeps extends AccountDeps {
  config: Pick<Config, 'passwordMinLength' | 'issuer' | 'keyEncryptionKey'>
  limits: Pick<
    RateLimits,
    'passwordResetPerAddress' | 'loginPerAccount' | 'passwordPerUser' | 'passwordResetTokenPerIp'
  >
}

export type ResetRequestOutcome = 'reset_sent' | 'federated' | 'no_account'

const hashToken = (token: string) => createHash('sha256').update(token).digest('base64url')

/**
 * Asks for a reset of the account with `email` (README, "Password reset"). The answer may not
 * tell whether the address has an account, by its body nor by its time (docs/security.md, "No
 * enumeration"), so this does only what is the same for every address: it consumes the
 * address's budget and writes one `mail_requests` row of one shape. Everything that depends on
 * the account happens after the answer, in `resolveResetInTransaction`. Over the budget
 * nothing is queued (the earlier link stays valid), so flooding an address neither floods its
 * mailbox nor locks its owner out.
 */
export async function requestPasswordReset(
  deps: Pick<PasswordResetDeps, 'db' | 'clock' | 'limits'>,
  input: string,
  client: ClientContext,
): Promise<void> {
  const { email, normalized } = normalizeEmail(input)
  try {
    await deps.limits.passwordResetPerAddress.consume(accountKey(normalized))
  } catch (error) {
    if (error instanceof TesseraError && error.code === 'rate_limited') return
    throw error
  }
  await queueMailRequest(deps.db, deps.clock, {
    kind: 'password_reset',
    email,
    email_normalized: normalized,
    ip: client.ip,
  })
}

export type ResolveResetDeps = Pick<PasswordResetDeps, 'db' | 'clock' | 'config'>

/**
 * `tessera user reset-password`: the same resolution as a request's, at once and without the
 * address's budget. The operator is told the outcome; they may know which accounts exist.
 */
export function resetRequestNow(
  deps: ResolveResetDeps,
  input: string,
  client: ClientContext,
): Promise<ResetRequestOutcome> {
  const { email, normalized } = normalizeEmail(input)
  return deps.db
    .transaction()
    .execute((tx) =>
      resolveResetInTransaction(tx, deps, { email, email_normalized: normalized, ip: client.ip }),
    )
}

/**
 * The account's part of a request, after the answer (src/accounts/mail-request-pass.ts): an
 * account with a password gets a new token (its older ones are deleted: a newer request voids
 * them) and the link; a federated-only one a mail naming its providers; an unknown or disabled
 * address a mail saying no account there can be reset. One `password_reset_requested` audit
 * event records the outcome. The token's 30 minutes count from here, when it is made.
 */
export async function resolveResetInTransaction(
  tx: Kysely<Database>,
  deps: ResolveResetDeps,
  request: Pick<MailRequest, 'email' | 'email_normalized' | 'ip'>,
): Promise<ResetRequestOutcome> {
  const found = await findUserByEmail(tx, request.email_normalized)
  const user = found !== undefined && found.disabled === 0 ? found : undefined
  const outcome: ResetRequestOutcome =
    user === undefined ? 'no_account' : user.password_hash === null ? 'federated' : 'reset_sent'
  if (user === undefined) {
    await enqueueMail(tx, deps.clock, {
      to: request.email,
      template: 'password-reset-unknown',
      data: {},
    })
  } else if (outcome === 'federated') {
    await enqueueMail(tx, deps.clock, await federatedMail({ ...deps, db: tx }, user))
  } else {
    await queueResetToken(tx, deps, user, user.credential_version)
  }
  await recordAudit(tx, deps.clock, {
    event: 'password_reset_requested',
    userId: user?.id ?? null,
    ip: request.ip,
    detail: { outcome },
  })
  return outcome
}

/**
 * Issues a reset token for `user` inside the caller's transaction (the operator's forced reset,
 * src/admin/force-password-reset.ts): the user's earlier tokens are deleted, the new one is bound
 * to `credentialVersion` (the version the caller's change leaves) and its mail is queued.
 */
export async function queueResetToken(
  tx: Kysely<Database>,
  deps: Pick<PasswordResetDeps, 'clock' | 'config'>,
  user: User,
  credentialVersion: number,
): Promise<void> {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url')
  const now = deps.clock()
  await tx.deleteFrom('password_resets').where('user_id', '=', user.id).execute()
  await tx
    .insertInto('password_resets')
    .values({
      token_hash: hashToken(token),
      user_id: user.id,
      credential_version: credentialVersion,
      created_at: now,
      expires_at: now + RESET_TTL_MS,
      used_at: null,
    })
    .execute()
  await enqueueMail(tx, deps.clock, resetMail(deps, user, token))
}

function resetMail(deps: Pick<PasswordResetDeps, 'config'>, user: User, token: string): QueuedMail {
  // The page moves the token out of its URL at once (README, "Password reset").
  const link = `${deps.config.issuer}/reset-password?token=${token}`
  const sealed = (value: string) => sealMailSecret(deps.config.keyEncryptionKey, user.email, value)
  return {
    to: user.email,
    template: 'password-reset',
    data: { link: sealed(link), code: sealed(token), minutes: String(RESET_TTL_MS / 60_000) },
  }
}

/** The mail of a federated-only account: which providers it signs in with. */
export async function federatedMail(
  deps: Pick<PasswordResetDeps, 'db' | 'config'>,
  user: User,
): Promise<QueuedMail> {
  const identities = await listIdentities(deps.db, user.id)
  const labels = identities.map((i) =>
    Object.hasOwn(PROVIDERS, i.provider)
      ? PROVIDERS[i.provider as keyof typeof PROVIDERS].label
      : i.provider,
  )
  return {
    to: user.email,
    template: 'password-reset-federated',
    data: {
      providers: labels.length === 0 ? 'a federated provider' : [...new Set(labels)].join(', '),
      link: `${deps.config.issuer}/login`,
    },
  }
}

const invalidToken = () =>
  new TesseraError(
    'invalid_reset_token',
    'This reset token is unknown, expired, already used or replaced by a newer one',
  )

/**
 * Sets a new password with a reset token, in one transaction:
 * 1. the token is claimed by a conditional UPDATE (unused, unexpired), so it works once across
 *    replicas;
 * 2. the password is set only if the credential version is still the one the token was issued
 *    under (no password change since) and the account is not disabled; the version is bumped;
 * 3. every session ends through `revokeUserSessions` (the revocation log included), known devices
 *    are forgotten, the user's other tokens deleted, the audit event written and a notice mailed.
 * The new password is checked against the policy first, so a weak one leaves the token for
 * another try. Wrong tokens count against the client's budget (right ones are refunded).
 */
export async function resetPassword(
  deps: PasswordResetDeps,
  token: string,
  newPassword: string,
  client: ClientContext,
): Promise<void> {
  const next = checkPasswordPolicy(newPassword, passwordPolicy(deps))
  const ipKey = addressBucket(client.ip)
  await deps.limits.passwordResetTokenPerIp.consume(ipKey)
  const hash = await deps.hasher.hash(next)
  const tokenHash = hashToken(token)
  const user = await deps.db.transaction().execute(async (tx) => {
    const now = deps.clock()
    const claimed = await tx
      .updateTable('password_resets')
      .set({ used_at: now })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .returning(['user_id', 'credential_version'])
      .executeTakeFirst()
    if (claimed === undefined) throw invalidToken()
    const user = await tx
      .updateTable('users')
      .set((eb) => ({
        password_hash: hash,
        updated_at: now,
        credential_version: eb('credential_version', '+', 1),
      }))
      .where('id', '=', claimed.user_id)
      .where('credential_version', '=', claimed.credential_version)
      .where('disabled', '=', 0)
      .returning(['id', 'email', 'email_normalized'])
      .executeTakeFirst()
    if (user === undefined) throw invalidToken()
    await tx
      .deleteFrom('password_resets')
      .where('user_id', '=', user.id)
      .where('token_hash', '!=', tokenHash)
      .execute()
    await revokeUserSessions({ db: tx, clock: deps.clock }, user.id, 'password_reset')
    await forgetDevices(tx, user.id)
    await recordAudit(tx, deps.clock, {
      event: 'password_reset',
      userId: user.id,
      ip: client.ip,
    })
    await enqueueMail(tx, deps.clock, {
      to: user.email,
      template: 'password-reset-notice',
      data: { link: `${deps.config.issuer}/forgot-password` },
    })
    return user
  })
  await deps.limits.passwordResetTokenPerIp.refund(ipKey)
  // Whoever reset the password proved the mailbox: the owner is not held back by others' guesses.
  await deps.limits.loginPerAccount.reset(accountKey(user.email_normalized))
  await deps.limits.passwordPerUser.reset(user.id)
}
