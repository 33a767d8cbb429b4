import type { Kysely } from 'kysely'
import type { Config } from '../config/index.js'
import type { Database, User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { LoginOutcome, Metrics } from '../metrics.js'
import { type MfaLoginDeps, secondFactorChallenge } from '../mfa/login-step.js'
import { accountKey, type RateLimits } from '../rate-limit/limits.js'
import { openSession } from '../sessions/open-session.js'
import type { ClientContext } from '../sessions/sessions.js'
import type { AccessGrant } from '../tokens/grant.js'
import type { TokenPair } from '../tokens/token-pair.js'
import { type AccountDeps, authenticate } from './accounts.js'
import { issueDevice, renewDevice, trustedDevice } from './devices.js'
import { normalizeEmail } from './email.js'

export type PasswordSignInDeps = AccountDeps & {
  config: Pick<Config, 'requireVerifiedEmail'>
  limits: Pick<RateLimits, 'loginPerIp' | 'loginPerAccount' | 'loginPerDevice'>
  metrics: Pick<Metrics, 'logins'>
}

export type LoginDeps = PasswordSignInDeps & MfaLoginDeps

export interface PasswordLogin {
  /**
   * The token pair; or, for an account with a second factor, the `mfa_required` problem (with its
   * ticket) for the caller to answer once it has set the device cookie.
   */
  outcome: { pair: TokenPair } | { mfaRequired: TesseraError }
  /** The device cookie for the client to keep: a new one, or the one it presented, renewed. */
  deviceCookie: string
}

/**
 * Password login of the API: the shared sign-in, ending in a new session and a token pair, or in
 * the second step's ticket for an account with a second factor (README, "Second factors").
 */
export async function loginWithPassword(
  t: LoginDeps,
  credentials: { email: string; password: string },
  client: ClientContext,
  deviceToken?: string,
  grant?: AccessGrant,
): Promise<PasswordLogin> {
  const { session, deviceCookie } = await signInWithPassword(
    t,
    credentials,
    client,
    deviceToken,
    async (user, rememberDevice): Promise<PasswordLogin['outcome']> => {
      const challenge = await secondFactorChallenge(t, {
        userId: user.id,
        method: 'password',
        amr: ['pwd'],
        credentialVersion: user.credential_version,
        grant,
      })
      if (challenge !== undefined) return { mfaRequired: challenge }
      const pair = await openSession(t, user, client, {
        method: 'password',
        credentialVersion: user.credential_version,
        grant,
        claim: rememberDevice,
      })
      return { pair }
    },
  )
  return { outcome: session, deviceCookie }
}

/**
 * What a password sign-in ends in, given the checked user: a session of the caller's kind, whose
 * transaction must run `rememberDevice` (as its `claim`) so that the session and the device cookie
 * commit together; or an answer without a session (the second factor's step), after which the
 * device is remembered on its own.
 */
export type OpenAfterPassword<S> = (
  user: User,
  rememberDevice: (tx: Kysely<Database>) => Promise<void>,
) => Promise<S>

export interface PasswordSignIn<S> {
  user: User
  /** What `open` made of the checked user: a token pair, a browser session. */
  session: S
  deviceCookie: string
}

/**
 * Password sign-in, whoever asks (the API's login, Tessera's sign-in page): rate limits, the
 * credential check, then `open`, which starts the session the caller needs (a token pair for the
 * API, a browser session for the pages) and must refuse if the credential version it is given
 * changed meanwhile (`insertSessionRow`).
 *
 * Which budget an attempt counts against (README, "Passwords and login"): an attempt that presents
 * a live device cookie of the account it logs into counts against that device's budget only, so a
 * flood of failures from elsewhere never locks the owner out; every other attempt counts per client
 * address and per account. The per-account counter counts attempts for unknown addresses too, so
 * it behaves the same whether or not the account exists; a successful login without a device
 * cookie clears it. Each attempt is counted before the password is checked, in one atomic
 * statement: a check-then-count would let a burst of concurrent guesses all pass the check before
 * any of them is counted.
 */
export async function signInWithPassword<S>(
  t: PasswordSignInDeps,
  credentials: { email: string; password: string },
  client: ClientContext,
  deviceToken: string | undefined,
  open: OpenAfterPassword<S>,
): Promise<PasswordSignIn<S>> {
  try {
    const signedIn = await attemptSignIn(t, credentials, client, deviceToken, open)
    t.metrics.logins.inc({ outcome: 'ok' })
    return signedIn
  } catch (error) {
    const outcome = error instanceof TesseraError ? FAILED_LOGIN_OUTCOMES[error.code] : undefined
    if (outcome !== undefined) t.metrics.logins.inc({ outcome })
    throw error
  }
}

/**
 * The failures `tessera_logins_total` counts, by error code; anything else is not a login
 * outcome.
 */
const FAILED_LOGIN_OUTCOMES: Partial<Record<TesseraError['code'], LoginOutcome>> = {
  invalid_credentials: 'invalid_credentials',
  account_disabled: 'disabled',
  rate_limited: 'rate_limited',
}

/**
 * REQUIRE_VERIFIED_EMAIL (README, "Email verification and change"): a regular or academic
 * account signs in with its password only once its address is proven. Told only to someone who
 * gave the right password, like `account_disabled`, so it reveals nothing to others. Service
 * accounts and superusers are made by operators, who vouch for their addresses; federated
 * sign-in never reaches here and its addresses are the providers' verified ones.
 */
function refuseUnverifiedEmail(t: Pick<PasswordSignInDeps, 'config'>, user: User): void {
  if (!t.config.requireVerifiedEmail || user.email_verified === 1) return
  if (user.account_type !== 'regular' && user.account_type !== 'academic') return
  throw new TesseraError(
    'email_not_verified',
    'Verify your email address first: follow the link or enter the code mailed to it, or ask ' +
      'for a new one (POST /v1/user/email/verify/send)',
  )
}

async function attemptSignIn<S>(
  t: PasswordSignInDeps,
  credentials: { email: string; password: string },
  client: ClientContext,
  deviceToken: string | undefined,
  open: OpenAfterPassword<S>,
): Promise<PasswordSignIn<S>> {
  const email = normalizeEmail(credentials.email).normalized
  const device = await trustedDevice(t, deviceToken, email)
  const account = accountKey(email)
  if (device !== undefined) {
    await t.limits.loginPerDevice.consume(device)
  } else {
    await t.limits.loginPerIp.consume(client.ip ?? 'unknown')
    await t.limits.loginPerAccount.consume(account)
  }
  const user = await authenticate(t, credentials, client)
  // The owner's success on a known device leaves the shared count alone: clearing it would hand
  // whoever is guessing a fresh allowance each time the owner logs in.
  if (device !== undefined) await t.limits.loginPerDevice.reset(device)
  else await t.limits.loginPerAccount.reset(account)
  // After the reset: the owner who knows the password is not counted as a guesser meanwhile.
  refuseUnverifiedEmail(t, user)
  const remember = async (db: Kysely<Database>): Promise<string> => {
    if (device === undefined) return issueDevice({ db, clock: t.clock }, user.id)
    await renewDevice({ db, clock: t.clock }, device)
    // A trusted device is one whose token was presented.
    return deviceToken as string
  }
  let deviceCookie: string | undefined
  const session = await open(user, async (tx) => {
    deviceCookie = await remember(tx)
  })
  // `open` ended without a session (the second factor's step): the device is remembered alone.
  return { user, session, deviceCookie: deviceCookie ?? (await remember(t.db)) }
}
