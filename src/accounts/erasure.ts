import { type Kysely, sql } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Database } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { resetSecondFactors } from '../mfa/reset.js'
import { accountKey } from '../rate-limit/limits.js'
import { recordRevocation } from '../revocations/log.js'
import { revokeUserSessions } from '../sessions/sessions.js'
import { type RecentAuthenticationDeps, requireRecentAuthentication } from './reauthenticate.js'

export interface ErasureDeps {
  db: Kysely<Database>
  clock: Clock
}

/**
 * Audit detail keys kept for an erased user: each names what happened, never whom. Anything else
 * (an address before or after an email change, a device's IP address) is dropped, and a
 * `reason` is kept only when it is one of Tessera's own codes, since an operator's free-text
 * reason may name the person (README, "Deleting an account").
 */
const KEPT_DETAIL_KEYS = new Set([
  'by',
  'method',
  'kind',
  'provider',
  'account_type',
  'outcome',
  'audience',
  'scope',
  'expires_in',
  'client_id',
  'verified',
  'from',
  'to',
])
const CODE = /^[a-z_]{1,64}$/

/** Pseudonymous form of one audit `detail` of an erased user (null when nothing is left). */
export function scrubbedDetail(detail: string | null): string | null {
  if (detail === null) return null
  let parsed: Record<string, unknown>
  try {
    parsed = JSON.parse(detail) as Record<string, unknown>
  } catch {
    return null
  }
  const kept = Object.entries(parsed).filter(
    ([key, value]) =>
      KEPT_DETAIL_KEYS.has(key) ||
      (key === 'reason' && typeof value === 'string' && CODE.test(value)),
  )
  return kept.length === 0 ? null : JSON.stringify(Object.fromEntries(kept))
}

/** The rate-limit counters of the account (src/rate-limit/limits.ts): its id, its address hash. */
function accountCounterKeys(userId: string, normalizedEmail: string): string[] {
  const account = accountKey(normalizedEmail)
  return [
    `login_acct:${account}`,
    `email_address:${account}`,
    `reset_address:${account}`,
    `password_user:${userId}`,
    `mfa_user:${userId}`,
  ]
}

/**
 * Erases an account (GDPR Art. 17; README, "Deleting an account"), for `DELETE /v1/user/me`, the
 * admin delete and `tessera user delete`. In one transaction:
 *
 * 1. every session (API, browser, personal and job tokens) is revoked through the revocation log,
 *    and a user entry revokes every token issued before now, so verifiers following the feed
 *    refuse its access tokens within a second (docs/revocation.md);
 * 2. every row that names the person goes: identities, sessions, refresh tokens, personal tokens,
 *    login codes, OAuth states of link flows, link tickets, device logins the user decided,
 *    device cookies, email and password-reset tokens, mail not yet sent to any of its addresses,
 *    and the rate-limit counters of its address;
 * 3. the user row goes, email, name and password hash with it, so the address can register again;
 * 4. the user's audit events stay, under the user id (a random UUID that names nobody once the
 *    row is gone), with their IP addresses removed and their detail scrubbed (`scrubbedDetail`);
 *    a `user_deleted` event names who erased it (`by`: the user id, another superuser's, `cli`).
 *
 * The revocation log keeps its entries (user and session ids) until its retention ends them:
 * verifiers need them to refuse the tokens already issued.
 */
export async function eraseAccount(deps: ErasureDeps, userId: string, by: string): Promise<void> {
  await inTransaction(deps.db, async (tx) => {
    const user = await tx
      .updateTable('users')
      // Takes the row lock first, as a login does (insertSessionRow): a login that checked the
      // password before this transaction cannot open a session after it.
      .set((eb) => ({ credential_version: eb('credential_version', '+', 1) }))
      .where('id', '=', userId)
      .returning(['id', 'email', 'email_normalized'])
      .executeTakeFirst()
    if (user === undefined) throw new TesseraError('not_found', 'No such user')
    await revokeUserSessions({ db: tx, clock: deps.clock }, userId, 'user_deleted')
    await recordRevocation(tx, deps.clock, { kind: 'user', userId })

    const pending = await tx
      .selectFrom('email_tokens')
      .select('email')
      .where('user_id', '=', userId)
      .execute()
    const addresses = [
      ...new Set([user.email, user.email_normalized, ...pending.map((p) => p.email)]),
    ].map((a) => a.toLowerCase())
    await tx
      .deleteFrom('mail_queue')
      .where(sql<string>`lower(recipient)`, 'in', addresses)
      .execute()
    await tx
      .deleteFrom('mail_requests')
      .where((eb) =>
        eb.or([
          eb(sql<string>`lower(email)`, 'in', addresses),
          eb('email_normalized', 'in', addresses),
        ]),
      )
      .execute()
    await sql`delete from rate_limits where key in (${sql.join(
      accountCounterKeys(userId, user.email_normalized),
    )})`.execute(tx)

    await tx.deleteFrom('personal_tokens').where('user_id', '=', userId).execute()
    await tx.deleteFrom('link_tickets').where('user_id', '=', userId).execute()
    await tx.deleteFrom('refresh_tokens').where('user_id', '=', userId).execute()
    await tx.deleteFrom('login_codes').where('user_id', '=', userId).execute()
    await tx.deleteFrom('oauth_states').where('link_user_id', '=', userId).execute()
    await tx.deleteFrom('device_authorizations').where('user_id', '=', userId).execute()
    await tx.deleteFrom('login_devices').where('user_id', '=', userId).execute()
    await tx.deleteFrom('email_tokens').where('user_id', '=', userId).execute()
    await tx.deleteFrom('password_resets').where('user_id', '=', userId).execute()
    await resetSecondFactors(tx, userId)
    await tx.deleteFrom('identities').where('user_id', '=', userId).execute()
    await tx.deleteFrom('sessions').where('user_id', '=', userId).execute()
    await tx.deleteFrom('users').where('id', '=', userId).execute()

    const events = await tx
      .selectFrom('audit_events')
      .select(['id', 'detail'])
      .where('user_id', '=', userId)
      .execute()
    await tx.updateTable('audit_events').set({ ip: null }).where('user_id', '=', userId).execute()
    for (const event of events) {
      const detail = scrubbedDetail(event.detail)
      if (detail !== event.detail) {
        await tx.updateTable('audit_events').set({ detail }).where('id', '=', event.id).execute()
      }
    }
    await recordAudit(tx, deps.clock, { event: 'user_deleted', userId, detail: { by } })
  })
}

/**
 * `DELETE /v1/user/me`: a user erases their own account. Erasure cannot be undone, so the session
 * must have proved the account within REAUTH_MAX_AGE, as for any credential change (README,
 * "Recent authentication"); a token made from a personal access token never qualifies.
 */
export async function deleteOwnAccount(
  deps: RecentAuthenticationDeps,
  claims: { sub: string; sid: string },
): Promise<void> {
  await requireRecentAuthentication(deps, claims.sid)
  await eraseAccount(deps, claims.sub, claims.sub)
}
