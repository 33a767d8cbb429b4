import type { AuthenticationResponseJSON } from '@simplewebauthn/server'
import type { Kysely } from 'kysely'
import { preparedQuery } from '../db/prepared.js'
import type { Database, User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import {
  type AuthenticationOptions,
  authenticationOptionsForUser,
  verifyPasskeyForUser,
} from '../passkeys/authentication.js'
import { hasPasskeys, type PasskeyDeps, passkeyIds } from '../passkeys/passkeys.js'
import type { AuthenticationMethod } from '../sessions/amr.js'
import type { ClientContext } from '../sessions/sessions.js'
import { type RecoveryCodeDeps, spendRecoveryCode, unusedRecoveryCodes } from './recovery-codes.js'
import { confirmedTotp, spendTotpCode, type TotpDeps } from './totp.js'

/**
 * The second factors there are (README, "Second factors"), as `factors` of the `mfa_required`
 * problem names them. `webauthn` (a passkey) is checked by src/passkeys.
 */
export type SecondFactor = 'totp' | 'recovery_code' | 'webauthn'

/** What a client presents as its second factor: exactly one of them. */
export type FactorProof =
  | { kind: 'totp'; code: string }
  | { kind: 'recovery_code'; code: string }
  | { kind: 'webauthn'; assertion: PasskeyAssertion }

/**
 * A passkey's answer in the MFA step: the handle of the challenge the step's options made
 * (`mfaPasskeyOptions`) and the authenticator's assertion.
 */
export interface PasskeyAssertion {
  challenge: string
  response: AuthenticationResponseJSON
}

export type FactorDeps = TotpDeps & RecoveryCodeDeps & PasskeyDeps

/**
 * The second factors a user can present now: the one answer every check of "has this account a
 * second factor" uses (the login step, the policy, the pages). A pending TOTP enrolment is none;
 * recovery codes count while one is unused; a passkey counts as `webauthn`.
 */
export async function enrolledFactors(
  db: Kysely<Database>,
  userId: string,
): Promise<SecondFactor[]> {
  const row = await factorsEnrolled.first(db, { userId })
  const factors: SecondFactor[] = []
  // 1 or 0 from SQLite, true or false from PostgreSQL.
  if (row?.totp) factors.push('totp')
  if (row?.recovery_code) factors.push('recovery_code')
  if (row?.webauthn) factors.push('webauthn')
  return factors
}

/** One statement for every password login: which factors the user has (`enrolledFactors`). */
const factorsEnrolled = preparedQuery((db, p: { userId: string }) =>
  db.selectNoFrom((eb) => [
    eb.exists(confirmedTotp(db, p.userId)).as('totp'),
    eb.exists(unusedRecoveryCodes(db, p.userId)).as('recovery_code'),
    eb.exists(passkeyIds(db, p.userId)).as('webauthn'),
  ]),
)

/**
 * Checks and spends one second factor of `user` (a TOTP step, a recovery code, a passkey's
 * assertion), and returns the RFC 8176 method it adds to the session's `amr`: each factor names
 * its own (`otp`; a passkey's `hwk` or `swk`). The one dispatch on the factor's kind: a new
 * factor is one more case here. Throws `factor_not_enrolled` for a factor the user has not,
 * `invalid_mfa_code` for a wrong code, `passkey_invalid` or `challenge_expired` for a passkey.
 */
export async function checkSecondFactor(
  t: FactorDeps,
  user: Pick<User, 'id' | 'email'>,
  proof: FactorProof,
  client: ClientContext,
): Promise<AuthenticationMethod> {
  switch (proof.kind) {
    case 'totp':
      await spendTotpCode(t, user.id, proof.code)
      return 'otp'
    case 'recovery_code':
      await spendRecoveryCode(t, user, proof.code, client)
      return 'otp'
    case 'webauthn': {
      // The challenge was made for this user only (`mfaPasskeyOptions`), which consumed a point
      // of the MFA budget; a verified assertion gives it back, as a right code does.
      const verified = await verifyPasskeyForUser(
        t,
        { userId: user.id, ...proof.assertion },
        client,
      )
      await t.limits.mfaPerUser.refund(user.id)
      return verified.amr[0]
    }
  }
}

/**
 * The factor a request body names: exactly one of `totp_code`, `recovery_code` and `webauthn`
 * (openapi.yaml, `SecondFactorProof`).
 */
export function factorProof(body: {
  totp_code?: string | undefined
  recovery_code?: string | undefined
  webauthn?: PasskeyAssertion | undefined
}): FactorProof {
  const given = [body.totp_code, body.recovery_code, body.webauthn].filter((v) => v !== undefined)
  if (given.length !== 1) {
    const message = 'give exactly one of totp_code, recovery_code and webauthn'
    throw new TesseraError('validation_failed', message, {
      errors: [{ field: 'totp_code', message }],
    })
  }
  if (body.totp_code !== undefined) return { kind: 'totp', code: body.totp_code }
  if (body.recovery_code !== undefined) return { kind: 'recovery_code', code: body.recovery_code }
  // One of the three was given (above), and it is neither of the others.
  return { kind: 'webauthn', assertion: body.webauthn as PasskeyAssertion }
}

/**
 * Options for a passkey as the second factor of `userId` (README, "Second factors"): a
 * challenge bound to that account and its passkeys (`authenticationOptionsForUser`). Each costs
 * a point of the user's MFA budget, as a wrong code does, since each writes a row; the verified
 * assertion refunds it, so only failed or abandoned attempts count. `factor_not_enrolled` for an
 * account without a passkey.
 */
export async function mfaPasskeyOptions(
  t: FactorDeps,
  userId: string,
): Promise<AuthenticationOptions> {
  if (!(await hasPasskeys(t.db, userId))) {
    throw new TesseraError('factor_not_enrolled', 'This account has no passkey')
  }
  await t.limits.mfaPerUser.consume(userId)
  return authenticationOptionsForUser(t, userId)
}
