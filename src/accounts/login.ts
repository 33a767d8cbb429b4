import { recordAudit } from '../audit/audit.js'
import type { User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { LoginOutcome } from '../metrics.js'
import { accountKey } from '../rate-limit/limits.js'
import { type ClientContext, startSession } from '../sessions/sessions.js'
import type { Tessera } from '../tessera.js'
import { type TokenPair, issueTokenPair } from '../tokens/token-pair.js'
import { authenticate } from './accounts.js'
import { normalizeEmail } from './email.js'

/**
 * Password login: per-IP and per-account limits, the credential check, a new session and a token
 * pair. The per-account counter counts attempts for unknown addresses too, so it behaves the same
 * whether or not the account exists; a successful login clears it. Each attempt is counted before
 * the password is checked, in one atomic statement: a check-then-count would let a burst of
 * concurrent guesses all pass the check before any of them is counted.
 */
export async function loginWithPassword(
  t: Tessera,
  credentials: { email: string; password: string },
  client: ClientContext,
): Promise<TokenPair> {
  try {
    const pair = await attemptLogin(t, credentials, client)
    t.metrics.logins.inc({ outcome: 'ok' })
    return pair
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
): Promise<TokenPair> {
  const account = accountKey(normalizeEmail(credentials.email).normalized)
  await t.limits.loginPerIp.consume(client.ip ?? 'unknown')
  await t.limits.loginPerAccount.consume(account)
  const user = await authenticate(t, credentials, client)
  await t.limits.loginPerAccount.reset(account)
  return openSession(t, user, client, 'password', user.credential_version)
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
