import type { Kysely } from 'kysely'
import {
  type RecentAuthenticationDeps,
  requireRecentAuthentication,
} from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import { addressBucket } from '../rate-limit/address-bucket.js'
import type { RateLimits } from '../rate-limit/limits.js'
import type { DeviceDeps } from './authorization.js'
import { normalizeUserCode, userCodeHash } from './user-code.js'

/**
 * The verification page's side of the device grant (RFC 8628 §3.3): the signed-in user enters
 * the code shown by the device, sees who asks, and approves or denies. The page is a thin layer
 * over these three functions.
 */

export type VerificationDeps = DeviceDeps &
  RecentAuthenticationDeps & {
    limits: Pick<RateLimits, 'userCodePerSession' | 'userCodePerIp'>
  }

/** Who types a code: the browser session it is typed in and the address it comes from. */
export interface CodeEntry {
  sessionId: string
  ip: string | null
}

/** A signed-in user deciding on a code. */
export interface Decider extends CodeEntry {
  userId: string
}

/** What the page shows before the user decides: which client asks, from where, since when. */
export interface DeviceRequest {
  clientId: string
  /** The address and user agent of the device that asked (may be a proxy's, or unknown). */
  ip: string | null
  userAgent: string | null
  /** Epoch milliseconds. */
  createdAt: number
  expiresAt: number
}

const invalidUserCode = () =>
  new TesseraError('invalid_user_code', 'This code is unknown, expired or already used')

/**
 * Counts an entry against the session's and the address's budgets (an IPv6 address by its /64)
 * before the code is looked up,
 * and gives both points back when the code was right: only wrong codes are counted, and
 * counting first means parallel guesses cannot overrun the budget (README, "Device login").
 * `lookUp` answers whether the code was right; its errors pass through (refunded when the code
 * itself was right).
 */
async function countingWrongCodes<T>(
  t: VerificationDeps,
  entry: CodeEntry,
  lookUp: () => Promise<{ right: false } | { right: true; value: T }>,
): Promise<T> {
  const ipKey = addressBucket(entry.ip)
  await t.limits.userCodePerSession.consume(entry.sessionId)
  try {
    await t.limits.userCodePerIp.consume(ipKey)
  } catch (error) {
    await t.limits.userCodePerSession.refund(entry.sessionId)
    throw error
  }
  const outcome = await lookUp()
  if (!outcome.right) throw invalidUserCode()
  await t.limits.userCodePerSession.refund(entry.sessionId)
  await t.limits.userCodePerIp.refund(ipKey)
  return outcome.value
}

function hashOf(t: DeviceDeps, userCode: string): string | undefined {
  const normalized = normalizeUserCode(userCode)
  return normalized === undefined ? undefined : userCodeHash(t.config.keyEncryptionKey, normalized)
}

/**
 * The pending request behind a typed code, or `invalid_user_code` alike for a code that is
 * malformed, unknown, expired, or already approved or denied.
 */
export async function describeUserCode(
  t: VerificationDeps,
  entry: CodeEntry,
  userCode: string,
): Promise<DeviceRequest> {
  return countingWrongCodes<DeviceRequest>(t, entry, async () => {
    const hash = hashOf(t, userCode)
    if (hash === undefined) return { right: false }
    const row = await t.db
      .selectFrom('device_authorizations')
      .select(['client_id', 'client_ip', 'client_user_agent', 'created_at', 'expires_at'])
      .where('user_code_hash', '=', hash)
      .where('status', '=', 'pending')
      .where('expires_at', '>', t.clock())
      .executeTakeFirst()
    if (row === undefined) return { right: false }
    return {
      right: true,
      value: {
        clientId: row.client_id,
        ip: row.client_ip,
        userAgent: row.client_user_agent,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
      },
    }
  })
}

/**
 * Approves the device login of a code for the signed-in user: the device's next poll gets a
 * session of this account. That adds a lasting way into the account, like linking an identity,
 * so the deciding session must have proved the account recently (README, "Recent
 * authentication"). A code is decided once.
 */
export async function approveUserCode(
  t: VerificationDeps,
  decider: Decider,
  userCode: string,
): Promise<void> {
  await requireRecentAuthentication(t, decider.sessionId)
  await decide(t, decider, userCode, 'approved')
}

/** Denies the device login of a code: its device's polls answer `access_denied`. */
export async function denyUserCode(
  t: VerificationDeps,
  decider: Decider,
  userCode: string,
): Promise<void> {
  await decide(t, decider, userCode, 'denied')
}

async function decide(
  t: VerificationDeps,
  decider: Decider,
  userCode: string,
  decision: 'approved' | 'denied',
): Promise<void> {
  const outcome = await countingWrongCodes(t, decider, async () => {
    const hash = hashOf(t, userCode)
    if (hash === undefined) return { right: false }
    const decided = await t.db
      .transaction()
      .execute((tx) => decideIn(tx, t, decider, hash, decision))
    return decided === 'invalid_code' ? { right: false } : { right: true, value: decided }
  })
  if (outcome === 'account_disabled') {
    throw new TesseraError('account_disabled', 'This account is disabled')
  }
  if (outcome === 'session_ended') {
    throw new TesseraError('unauthorized', 'The session has ended; sign in again')
  }
}

/**
 * One transaction, locking as every account change does (docs/refresh.md): the user row (still
 * enabled), the deciding session (still live, this user's), then the code, claimed with a
 * conditional `UPDATE ... WHERE status = 'pending'` so that it is decided once across replicas.
 * A disable or logout that commits first is seen here; one that comes later ends the session the
 * device gets with the others.
 */
async function decideIn(
  tx: Kysely<Database>,
  t: VerificationDeps,
  decider: Decider,
  hash: string,
  decision: 'approved' | 'denied',
): Promise<'decided' | 'invalid_code' | 'account_disabled' | 'session_ended'> {
  const now = t.clock()
  const enabled = await tx
    .updateTable('users')
    .set((eb) => ({ updated_at: eb.ref('updated_at') }))
    .where('id', '=', decider.userId)
    .where('disabled', '=', 0)
    .executeTakeFirst()
  if (enabled.numUpdatedRows === 0n) return 'account_disabled'
  // The session's `amr` is read under its lock: the device's session carries how the approving
  // browser proved the account (README, "Second factors"), a step-up a moment ago included.
  const live = await tx
    .updateTable('sessions')
    .set((eb) => ({ last_used_at: eb.ref('last_used_at') }))
    .where('id', '=', decider.sessionId)
    .where('user_id', '=', decider.userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .returning(['amr'])
    .executeTakeFirst()
  if (live === undefined) return 'session_ended'
  const claimed = await tx
    .updateTable('device_authorizations')
    .set({
      status: decision,
      user_id: decider.userId,
      decided_by_session_id: decider.sessionId,
      decided_at: now,
      amr: decision === 'approved' ? live.amr : null,
    })
    .where('user_code_hash', '=', hash)
    .where('status', '=', 'pending')
    .where('expires_at', '>', now)
    .returning(['client_id', 'client_ip'])
    .executeTakeFirst()
  if (claimed === undefined) return 'invalid_code'
  await recordAudit(tx, t.clock, {
    event: decision === 'approved' ? 'device_approved' : 'device_denied',
    userId: decider.userId,
    sessionId: decider.sessionId,
    ip: decider.ip,
    detail: { client_id: claimed.client_id, device_ip: claimed.client_ip },
  })
  return 'decided'
}
