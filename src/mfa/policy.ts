import type { Kysely } from 'kysely'
import { assertSuperuser } from '../accounts/accounts.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import { hasMfa } from '../sessions/amr.js'

/**
 * MFA_REQUIRED_FOR (README, "Second factors"): `superuser` (the default) makes a second factor the
 * price of superuser powers; `everyone` also limits every account's sessions without one to
 * enrolling (`requireUser`); `none` asks nobody.
 */
export type MfaRequiredFor = Config['mfaRequiredFor']

function mfaStepUpRequired(what: string): TesseraError {
  return new TesseraError(
    'mfa_step_up_required',
    `${what} needs a session with a second factor: enrol one (POST /v1/user/mfa/totp) and sign ` +
      'in with it, or step this session up (POST /v1/user/mfa/step-up)',
  )
}

/**
 * Refuses unless `claims` are an enabled superuser's (read from the database, `assertSuperuser`)
 * and, unless MFA_REQUIRED_FOR=none, of a session that passed a second factor (`mfa` in its
 * `amr`). A superuser promoted without one keeps the account type but not its powers until they
 * enrol and step up.
 */
export async function assertSuperuserPowers(
  t: { db: Kysely<Database>; config: Pick<Config, 'mfaRequiredFor'> },
  claims: { sub: string; amr?: readonly string[] | undefined },
): Promise<void> {
  await assertSuperuser(t.db, claims.sub)
  if (t.config.mfaRequiredFor !== 'none' && !hasMfa(claims.amr)) {
    throw mfaStepUpRequired('Acting as a superuser')
  }
}

/**
 * MFA_REQUIRED_FOR=everyone: a session without a second factor may only enrol one, step up, read
 * the account and sign out (`MFA_ENROLMENT_ROUTES`); everything else it asks answers
 * `mfa_step_up_required`.
 */
export function assertMfaPolicyAllows(
  config: Pick<Config, 'mfaRequiredFor'>,
  claims: { amr?: readonly string[] | undefined },
  method: string,
  path: string,
): void {
  if (config.mfaRequiredFor !== 'everyone' || hasMfa(claims.amr)) return
  if (MFA_ENROLMENT_ROUTES.some((route) => route.method === method && route.path.test(path))) return
  throw mfaStepUpRequired('This deployment requires a second factor for every account: this')
}

/**
 * What a session without a second factor may do under MFA_REQUIRED_FOR=everyone. A passkey is
 * a second factor too (README, "Passkeys"), so registering one and listing them is enrolment;
 * renaming or removing one is not.
 */
const MFA_ENROLMENT_ROUTES: ReadonlyArray<{ method: string; path: RegExp }> = [
  { method: 'GET', path: /^\/v1\/user\/me$/ },
  { method: 'GET', path: /^\/v1\/user\/mfa$/ },
  { method: 'POST', path: /^\/v1\/user\/mfa\/(totp|totp\/confirm|step-up(\/webauthn-options)?)$/ },
  { method: 'GET', path: /^\/v1\/user\/passkeys$/ },
  { method: 'POST', path: /^\/v1\/user\/passkeys(\/registration-options)?$/ },
  { method: 'POST', path: /^\/v1\/user\/auth\/(reauthenticate|logout-all)$/ },
]
