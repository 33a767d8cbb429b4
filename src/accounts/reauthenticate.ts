import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import type { RateLimits } from '../rate-limit/limits.js'
import {
  type ClientContext,
  markSessionAuthenticated,
  sessionAuthenticatedAt,
} from '../sessions/sessions.js'
import { type AccountDeps, authenticate, getUser } from './accounts.js'

export interface RecentAuthenticationDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'reauthMaxAge'>
}

export interface ReauthenticateDeps extends AccountDeps {
  limits: Pick<RateLimits, 'passwordPerUser'>
}

/**
 * Refuses an account change unless the session's holder proved the account within
 * REAUTH_MAX_AGE seconds (README, "Recent authentication"): a stolen access token alone must not
 * turn into lasting access, such as a linked identity of the thief's.
 */
export async function requireRecentAuthentication(
  t: RecentAuthenticationDeps,
  sessionId: string,
): Promise<void> {
  const at = await sessionAuthenticatedAt(t, sessionId)
  if (at === undefined) {
    throw new TesseraError('unauthorized', 'The session of this access token has ended', {
      invalidToken: true,
    })
  }
  const maxAge = t.config.reauthMaxAge
  if (t.clock() - at > maxAge * 1000) {
    throw new TesseraError(
      'reauthentication_required',
      `This change needs an authentication within the last ${maxAge} seconds: ` +
        're-enter the password (POST /v1/user/auth/reauthenticate) or sign in again',
      { maxAge },
    )
  }
}

/**
 * Re-proves the account of a live session with its password. Counted against the user's own
 * password budget, the one password change uses (as many per window as
 * RATE_LIMIT_LOGIN_PER_ACCOUNT), so a stolen access token cannot guess the password here, and
 * failed logins by others never block the owner (README, "Passwords and login"). A federated-only
 * account has no password and answers `invalid_credentials` after the same work as a wrong one
 * (it re-authenticates by signing in again instead).
 */
export async function reauthenticate(
  t: ReauthenticateDeps,
  claims: { sub: string; sid: string },
  password: string,
  client: ClientContext,
): Promise<void> {
  const user = await getUser(t.db, claims.sub)
  await t.limits.passwordPerUser.consume(user.id)
  const proved = await authenticate(t, { email: user.email, password }, client)
  if (proved.id !== user.id)
    throw new TesseraError('invalid_credentials', 'Invalid email or password')
  await t.limits.passwordPerUser.reset(user.id)
  await inTransaction(t.db, async (tx) => {
    if (!(await markSessionAuthenticated({ db: tx, clock: t.clock }, claims.sid))) {
      throw new TesseraError('unauthorized', 'The session of this access token has ended', {
        invalidToken: true,
      })
    }
    await recordAudit(tx, t.clock, {
      event: 'reauthenticated',
      userId: user.id,
      sessionId: claims.sid,
      ip: client.ip,
    })
  })
}
