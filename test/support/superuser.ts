import { registerAccount } from '../../src/accounts/accounts.js'
import type { User } from '../../src/db/schema.js'
import type { TestApp } from './app.js'
import { enrolTotp, loginWithTotp } from './mfa.js'
import { login, PASSWORD, type TokenPairBody, uniqueEmail } from './users.js'

export interface SignedInSuperuser {
  user: User
  email: string
  tokens: TokenPairBody
  /** The base32 TOTP secret of the superuser's second factor, to compute codes from. */
  totpSecret: string
  recoveryCodes: string[]
}

/**
 * What `tessera user create-superuser` does, then TOTP enrolment and a login through both
 * factors: the one way tests get a superuser token, so that what a superuser must prove to act
 * (a password and a second factor; README, "Second factors") changes in one place. The login's
 * code is of the step after the enrolment's; a test that signs this superuser in again advances
 * the clock a step first.
 */
export async function signedInSuperuser(
  app: TestApp,
  email = uniqueEmail('root'),
): Promise<SignedInSuperuser> {
  const user = await registerAccount(
    app.server.tessera,
    { email, password: PASSWORD, accountType: 'superuser' },
    { ip: null, userAgent: null },
  )
  const enrolled = await enrolTotp(app, (await login(app, email)).access_token)
  return {
    user,
    email,
    tokens: await loginWithTotp(app, email, enrolled.secret),
    totpSecret: enrolled.secret,
    recoveryCodes: enrolled.recoveryCodes,
  }
}
