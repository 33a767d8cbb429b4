import { registerAccount } from '../../src/accounts/accounts.js'
import type { User } from '../../src/db/schema.js'
import type { TestApp } from './app.js'
import { login, PASSWORD, type TokenPairBody, uniqueEmail } from './users.js'

export interface SignedInSuperuser {
  user: User
  email: string
  tokens: TokenPairBody
}

/**
 * What `tessera user create-superuser` does, then a login: the one way tests get a superuser
 * token, so that what a superuser must prove to act (a password today) changes in one place.
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
  return { user, email, tokens: await login(app, email) }
}
