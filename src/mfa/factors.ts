import type { Kysely } from 'kysely'
import type { Database, User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { AuthenticationMethod } from '../sessions/amr.js'
import type { ClientContext } from '../sessions/sessions.js'
import { hasRecoveryCodes, type RecoveryCodeDeps, spendRecoveryCode } from './recovery-codes.js'
import { hasTotp, spendTotpCode, type TotpDeps } from './totp.js'

/**
 * The second factors there are (README, "Second factors"), as `factors` of the `mfa_required`
 * problem names them. `webauthn` (passkeys) is checked by src/passkeys once wired in.
 */
export type SecondFactor = 'totp' | 'recovery_code' | 'webauthn'

/** What a client presents as its second factor: exactly one of them. */
export type FactorProof =
  | { kind: 'totp'; code: string }
  | { kind: 'recovery_code'; code: string }
  | { kind: 'webauthn'; assertion: unknown }

export type FactorDeps = TotpDeps & RecoveryCodeDeps

/**
 * The second factors a user can present now: the one answer every check of "has this account a
 * second factor" uses (the login step, the policy, the pages). A pending TOTP enrolment is none;
 * recovery codes count while one is unused.
 */
export async function enrolledFactors(
  db: Kysely<Database>,
  userId: string,
): Promise<SecondFactor[]> {
  const factors: SecondFactor[] = []
  if (await hasTotp(db, userId)) factors.push('totp')
  if (await hasRecoveryCodes(db, userId)) factors.push('recovery_code')
  return factors
}

/**
 * Checks and spends one second factor of `user` (a TOTP step, a recovery code), and returns the
 * RFC 8176 method it adds to the session's `amr`. The one dispatch on the factor's kind: a new
 * factor is one more case here. Throws `factor_not_enrolled` for a factor the user has not,
 * `invalid_mfa_code` for a wrong one.
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
    case 'webauthn':
      // Passkeys (src/passkeys) plug in here: verify the assertion, answer `hwk` or `swk`.
      throw new TesseraError('factor_not_enrolled', 'Passkeys are not available as a factor yet')
  }
}

/**
 * The factor a request body names: exactly one of `totp_code`, `recovery_code` and `webauthn`
 * (openapi.yaml, `SecondFactorProof`).
 */
export function factorProof(body: {
  totp_code?: string | undefined
  recovery_code?: string | undefined
  webauthn?: unknown
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
  return { kind: 'webauthn', assertion: body.webauthn }
}
