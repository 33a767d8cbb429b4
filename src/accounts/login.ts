import { recordAudit } from '../audit/audit.js'
import type { User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { LoginOutcome } from '../metrics.js'
import { accountKey } from '../rate-limit/limits.js'
import { type ClientContext, startSession } from '../sessions/sessions.js'
import type { Tessera } from '../tessera.js'
import { issueTokenPair, type TokenPair } from '../tokens/token-pair.js'
import { authenticate } from './accounts.js'
import { issueDevice, trustedDevice } from './devices.js'
import { normalizeEmail } from './email.js'

export interface PasswordLogin {
  pair: TokenPair
  /** A new device cookie value for the client to keep; undefined when it presented a valid one. */
  newDevice: string | undefined
}

/**
 * Password login: rate limits, the credential check, a new session and a token pair.
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
export async function loginWithPassword(
  t: Tessera,
  credentials: { email: string; password: string },
  client: ClientContext,
  deviceToken?: string,
): Promise<PasswordLogin> {
  try {
    const login = await attemptLogin(t, credentials, client, deviceToken)
    t.metrics.logins.inc({ outcome: 'ok' })
    return login
  } catch (error) {
    const outcome = error instanceof TesseraError ? FAILED_LOGIN_OUTCOMES[error.code] : undefined
    if (outcome !== undefined) t.metrics.logins.inc({ outcome })
    throw error
  }
}

/** The failures `tessera_logins_total` counts, by error code; anything else is not a login outcome. */
const FAILED_LOGIN_OUTCOMES: Partial<Record<TesseraError['code'], LoginOutcome>> = {
  invalid_credentials: 'invalid_credentials',
  account_disabled: 'disabled',
  rate_limited: 'rate_limited',
}

async function attemptLogin(
  t: Tessera,
  credentials: { email: string; password: string },
  client: ClientContext,
  deviceToken: string | undefined,
): Promise<PasswordLogin> {
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
  const pair = await openSession(t, user, client, 'password', user.credential_version)
  return { pair, newDevice: device === undefined ? await issueDevice(t, user.id) : undefined }
}

/**
 * The end of every successful login, whatever proved the identity (`method`: `password` or the
 * federated provider): a new session, its audit event and the first token pair. The session is
 * opened only if the user is still enabled and, given `credentialVersion` (the version the
 * password was checked against), the credential has not changed since (`startSession`).
 */
export async function openSession(
  t: Tessera,
  user: User,
  client: ClientContext,
  method: string,
  credentialVersion?: number,
): Promise<TokenPair> {
  const issued = await startSession(t, user.id, client, credentialVersion)
  await recordAudit(t.db, t.clock, {
    event: 'login_succeeded',
    userId: user.id,
    sessionId: issued.sessionId,
    ip: client.ip,
    detail: { method },
  })
  return issueTokenPair(t, user, issued)
}
