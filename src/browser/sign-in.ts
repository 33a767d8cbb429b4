import type { AuthenticationResponseJSON } from '@simplewebauthn/server'
import { getUser, type RegistrationDeps, registerAccount } from '../accounts/accounts.js'
import {
  type PasswordSignIn,
  type PasswordSignInDeps,
  signInWithPassword,
} from '../accounts/login.js'
import type { User } from '../db/schema.js'
import type { TesseraError } from '../errors.js'
import { claimLoginCode, type FlowDeps, federatedSecondFactor } from '../federation/flow.js'
import { checkSecondFactor, type FactorProof } from '../mfa/factors.js'
import { type MfaLoginDeps, secondFactorChallenge } from '../mfa/login-step.js'
import { readMfaTicket, spendMfaTicket } from '../mfa/tickets.js'
import { verifyPasskeySignIn } from '../passkeys/authentication.js'
import type { PasskeyDeps } from '../passkeys/passkeys.js'
import { withSecondFactor } from '../sessions/amr.js'
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
  t: PasswordSignInDeps & BrowserSessionDeps & MfaLoginDeps,
  credentials: { email: string; password: string },
  client: ClientContext,
  browser: { deviceToken: string | undefined; previousSecret: string | undefined },
): Promise<PasswordSignIn<StartedBrowserSession | TesseraError>> {
  return signInWithPassword(t, credentials, client, browser.deviceToken, async (user, remember) => {
    // An account with a second factor gets the MFA step page instead (README, "Second factors").
    const challenge = await secondFactorChallenge(t, {
      userId: user.id,
      method: 'password',
      amr: ['pwd'],
      credentialVersion: user.credential_version,
    })
    if (challenge !== undefined) return challenge
    return startBrowserSession(t, user, client, 'password', {
      credentialVersion: user.credential_version,
      previousSecret: browser.previousSecret,
      amr: ['pwd'],
      claim: remember,
    })
  })
}

/**
 * The MFA step page: the ticket of the first factor and a right second factor open the browser
 * session, whose `amr` has both; the session's transaction spends the ticket.
 */
export async function signInPagesWithSecondFactor(
  t: MfaLoginDeps & BrowserSessionDeps,
  ticket: string,
  proof: FactorProof,
  client: ClientContext,
  previousSecret: string | undefined,
): Promise<{ user: User; session: StartedBrowserSession }> {
  const open = await readMfaTicket(t, ticket)
  const user = await getUser(t.db, open.userId)
  const method = await checkSecondFactor(t, user, proof, client)
  const session = await startBrowserSession(t, user, client, open.method, {
    credentialVersion: open.credentialVersion,
    previousSecret,
    amr: withSecondFactor(open.amr, method),
    claim: (tx) => spendMfaTicket(tx, t.clock, open),
  })
  return { user, session }
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
    amr: ['pwd'],
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
): Promise<{ user: User; session: StartedBrowserSession | TesseraError }> {
  const claimed = await claimLoginCode(t, code, codeVerifier)
  // An account with a second factor gets the MFA step page (README, "Second factors").
  const challenge = await federatedSecondFactor(t, claimed)
  if (challenge !== undefined) return { user: claimed.user, session: challenge }
  const session = await startBrowserSession(t, claimed.user, client, claimed.provider, {
    previousSecret,
    amr: claimed.amr ?? ['fed'],
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
    amr: verified.amr,
  })
  return { user: verified.user, session, amr: verified.amr }
}
