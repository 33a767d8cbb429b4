import type { AuthenticationResponseJSON } from '@simplewebauthn/server'
import { type RegistrationDeps, registerAccount } from '../accounts/accounts.js'
import {
  type PasswordSignIn,
  type PasswordSignInDeps,
  signInWithPassword,
} from '../accounts/login.js'
import type { User } from '../db/schema.js'
import { claimLoginCode, type FlowDeps } from '../federation/flow.js'
import { verifyPasskeySignIn } from '../passkeys/authentication.js'
import type { PasskeyDeps } from '../passkeys/passkeys.js'
import type { ClientContext } from '../sessions/sessions.js'
import {
  type BrowserSessionDeps,
  type StartedBrowserSession,
  startBrowserSession,
} from './browser-sessions.js'

// The ways a browser signs in to Tessera's pages. Each ends in a new browser session that
// replaces the one the browser had (README, "Pages").

/**
 * The sign-in form: the API login's rate limits, device cookie and equal-time answers
 * (`signInWithPassword`), ending in a browser session instead of a token pair.
 */
export function signInPagesWithPassword(
  t: PasswordSignInDeps & BrowserSessionDeps,
  credentials: { email: string; password: string },
  client: ClientContext,
  browser: { deviceToken: string | undefined; previousSecret: string | undefined },
): Promise<PasswordSignIn<StartedBrowserSession>> {
  return signInWithPassword(t, credentials, client, browser.deviceToken, (user) =>
    startBrowserSession(t, user, client, 'password', {
      credentialVersion: user.credential_version,
      previousSecret: browser.previousSecret,
    }),
  )
}

/**
 * The registration form: `registerAccount` (its policy and `email_taken`), then the new account
 * is signed in, having just chosen its password.
 */
export async function registerAndSignIn(
  t: RegistrationDeps & BrowserSessionDeps,
  input: { email: string; password: string; displayName: string | null },
  client: ClientContext,
  previousSecret: string | undefined,
): Promise<{ user: User; session: StartedBrowserSession }> {
  const user = await registerAccount(t, input, client)
  const session = await startBrowserSession(t, user, client, 'password', {
    credentialVersion: user.credential_version,
    previousSecret,
  })
  return { user, session }
}

/**
 * The end of a federated sign-in started from the sign-in page: the page is its own client, so
 * it redeems the flow's login code with the PKCE verifier it kept (`claimLoginCode`: single use,
 * bound to this browser's verifier) and opens a browser session instead of a token pair.
 */
export async function signInPagesWithLoginCode(
  t: FlowDeps & BrowserSessionDeps,
  code: string,
  codeVerifier: string,
  client: ClientContext,
  previousSecret: string | undefined,
): Promise<{ user: User; session: StartedBrowserSession }> {
  const claimed = await claimLoginCode(t, code, codeVerifier)
  const session = await startBrowserSession(t, claimed.user, client, claimed.provider, {
    previousSecret,
  })
  t.federationMetrics.count(claimed.provider, 'ok')
  return { user: claimed.user, session }
}

/**
 * The sign-in page's "Sign in with a passkey" (README, "Passkeys"): a verified assertion of a
 * discoverable passkey (`verifyPasskeySignIn`: single-use challenge, user verification), then a
 * browser session with method `passkey`.
 */
export async function signInPagesWithPasskey(
  t: PasskeyDeps & BrowserSessionDeps,
  input: { challenge: string; response: AuthenticationResponseJSON },
  client: ClientContext,
  previousSecret: string | undefined,
): Promise<{ user: User; session: StartedBrowserSession; amr: string[] }> {
  const verified = await verifyPasskeySignIn(t, input, client)
  const session = await startBrowserSession(t, verified.user, client, 'passkey', {
    previousSecret,
  })
  return { user: verified.user, session, amr: verified.amr }
}
