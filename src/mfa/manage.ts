import { getUser } from '../accounts/accounts.js'
import {
  type RecentAuthenticationDeps,
  requireRecentAuthentication,
} from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import type { ClientContext } from '../sessions/sessions.js'
import { enrolledFactors, type FactorDeps } from './factors.js'
import { regenerateRecoveryCodes } from './recovery-codes.js'
import {
  confirmTotpEnrolment,
  spendTotpCode,
  startTotpEnrolment,
  type TotpEnrolment,
} from './totp.js'

/**
 * The user's own changes to their second factors (README, "Second factors"). Each is a
 * credential change, so each needs the session's recent authentication (README, "Recent
 * authentication"); removing TOTP may instead present a fresh code of it.
 */
export type ManageMfaDeps = FactorDeps & RecentAuthenticationDeps

type Claims = { sub: string; sid: string }

/** openapi.yaml, `MfaStatus`. */
export interface MfaStatus {
  factors: string[]
  totp: 'none' | 'pending' | 'enrolled'
  recovery_codes_left: number
}

export async function mfaStatus(t: Pick<ManageMfaDeps, 'db'>, userId: string): Promise<MfaStatus> {
  const totp = await t.db
    .selectFrom('totp_credentials')
    .select('confirmed_at')
    .where('user_id', '=', userId)
    .executeTakeFirst()
  const left = await t.db
    .selectFrom('recovery_codes')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
    .executeTakeFirstOrThrow()
  return {
    factors: await enrolledFactors(t.db, userId),
    totp: totp === undefined ? 'none' : totp.confirmed_at === null ? 'pending' : 'enrolled',
    recovery_codes_left: Number(left.n),
  }
}

export async function beginTotpEnrolment(t: ManageMfaDeps, claims: Claims): Promise<TotpEnrolment> {
  await requireRecentAuthentication(t, claims.sid)
  return startTotpEnrolment(t, await getUser(t.db, claims.sub))
}

/** Confirms the pending enrolment; the answer holds the recovery codes, shown this once. */
export async function finishTotpEnrolment(
  t: ManageMfaDeps,
  claims: Claims,
  code: string,
  client: ClientContext,
): Promise<string[]> {
  await requireRecentAuthentication(t, claims.sid)
  return confirmTotpEnrolment(t, await getUser(t.db, claims.sub), code, client)
}

export async function newRecoveryCodes(
  t: ManageMfaDeps,
  claims: Claims,
  client: ClientContext,
): Promise<string[]> {
  await requireRecentAuthentication(t, claims.sid)
  return regenerateRecoveryCodes(t, claims.sub, client)
}

/**
 * Removes TOTP and the recovery codes that back it up, in one transaction: with a fresh code of
 * it (`code`), or else with the session's recent authentication. Sessions keep their `amr`: they
 * did pass the factor when they were made.
 */
export async function removeTotp(
  t: ManageMfaDeps,
  claims: Claims,
  code: string | undefined,
  client: ClientContext,
): Promise<void> {
  if (code === undefined) await requireRecentAuthentication(t, claims.sid)
  else await spendTotpCode(t, claims.sub, code)
  await inTransaction(t.db, async (tx) => {
    const removed = await tx
      .deleteFrom('totp_credentials')
      .where('user_id', '=', claims.sub)
      .executeTakeFirst()
    if (removed.numDeletedRows === 0n) {
      throw new TesseraError('mfa_not_enrolled', 'This account has no TOTP enrolled')
    }
    await tx.deleteFrom('recovery_codes').where('user_id', '=', claims.sub).execute()
    await recordAudit(tx, t.clock, {
      event: 'mfa_disabled',
      userId: claims.sub,
      sessionId: claims.sid,
      ip: client.ip,
      detail: { factor: 'totp' },
    })
  })
}
