import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database, User } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { parseStoredAmr } from '../sessions/amr.js'
import { type ClientContext, insertSessionRow, revokeFamily } from '../sessions/sessions.js'

/**
 * A browser signed in to Tessera's own pages holds one cookie naming a session row of kind
 * `browser` (README, "Pages"). Being a session row, it ends with everything that ends sessions:
 * logout-all, a password change in another session, a disable, a revocation from the session
 * list.
 */
export const BROWSER_SESSION_COOKIE = 'tessera_session'
/** Recognisable prefix, so secret scanners and people can tell what leaked. */
const SECRET_PREFIX = 'tessera_bs_'
const SECRET_PATTERN = /^tessera_bs_[A-Za-z0-9_-]{43}$/
/**
 * `last_used_at` is written at most this often: the idle expiry is counted in minutes anyway, and
 * a page load then costs no write.
 */
export const TOUCH_INTERVAL_MS = 60_000

export interface BrowserSessionDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'browserSessionTtl' | 'browserSessionIdleTtl'>
}

/**
 * SHA-256 of the cookie's secret, the row's `cookie_hash`. The secret has 256 bits of entropy, so
 * a fast hash is enough, and finding the row is an exact index probe on the hash: no secret byte
 * is ever compared, so the lookup takes the same time whatever the guess.
 */
function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url')
}

export function looksLikeBrowserSecret(value: string | undefined): value is string {
  return value !== undefined && SECRET_PATTERN.test(value)
}

export interface StartedBrowserSession {
  sessionId: string
  /** The cookie's value; only its hash is stored. */
  secret: string
  /** Seconds until the absolute expiry: the cookie's Max-Age. */
  maxAge: number
  /** Its RFC 8176 methods, which a login code it mints carries (`continueSignIn`). */
  amr: readonly string[] | undefined
}

export interface StartOptions {
  /**
   * The version a password check saw (`insertSessionRow`); undefined when no password was
   * checked (a login code, a registration).
   */
  credentialVersion?: number | undefined
  /** The cookie this browser presented, if any: its session ends (rotation on sign-in). */
  previousSecret?: string | undefined
  /** RFC 8176 methods of the sign-in (`sessions.amr`; README, "Second factors"). */
  amr?: readonly string[] | undefined
  /** Runs last in the session's transaction (an MFA ticket spends itself there). */
  claim?: ((tx: Kysely<Database>) => Promise<void>) | undefined
}

/**
 * Starts a browser session for a user whose credential was just checked: the session row, the
 * end of the browser's previous session (a sign-in always rotates the cookie, so a value planted
 * in or read from the browser before the sign-in is worth nothing after it) and the
 * `login_succeeded` audit event, in one transaction. The user row is locked first, then the
 * session rows, the order every account change takes (docs/refresh.md).
 */
export async function startBrowserSession(
  deps: BrowserSessionDeps,
  user: Pick<User, 'id'>,
  client: ClientContext,
  method: string,
  options: StartOptions = {},
): Promise<StartedBrowserSession> {
  const secret = SECRET_PREFIX + randomBytes(32).toString('base64url')
  const now = deps.clock()
  const ttl = deps.config.browserSessionTtl
  const sessionId = await inTransaction(deps.db, async (tx) => {
    const id = await insertSessionRow({ db: tx, clock: deps.clock }, user.id, client, {
      kind: 'browser',
      expiresAt: now + ttl * 1000,
      cookieHash: hashSecret(secret),
      credentialVersion: options.credentialVersion,
      amr: options.amr,
    })
    if (looksLikeBrowserSecret(options.previousSecret)) {
      // Whoever's it was: the browser that held it is now someone else's session.
      await tx
        .updateTable('sessions')
        .set({ revoked_at: now, revoked_reason: 'replaced' })
        .where('cookie_hash', '=', hashSecret(options.previousSecret))
        .where('kind', '=', 'browser')
        .where('revoked_at', 'is', null)
        .execute()
    }
    await recordAudit(tx, deps.clock, {
      event: 'login_succeeded',
      userId: user.id,
      sessionId: id,
      ip: client.ip,
      detail: { method, kind: 'browser' },
    })
    if (options.claim !== undefined) await options.claim(tx)
    return id
  })
  return { sessionId, secret, maxAge: ttl, amr: options.amr }
}

export interface BrowserSession {
  id: string
  user: User
  /** Epoch ms of the absolute expiry. */
  expiresAt: number
  /** The cookie's secret, from which the session's CSRF token is derived. */
  secret: string
  /** Its RFC 8176 methods (`sessions.amr`), step-ups included; undefined for none. */
  amr: string[] | undefined
}

/**
 * The live session a browser's cookie names, or undefined: not revoked, before its absolute
 * expiry (BROWSER_SESSION_TTL from the sign-in), used within BROWSER_SESSION_IDLE_TTL, and its
 * user enabled. Records the use (at most once per TOUCH_INTERVAL_MS).
 */
export async function resolveBrowserSession(
  deps: BrowserSessionDeps,
  secret: string | undefined,
): Promise<BrowserSession | undefined> {
  if (!looksLikeBrowserSecret(secret)) return undefined
  const now = deps.clock()
  const row = await deps.db
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .selectAll('u')
    .select([
      's.id as session_id',
      's.last_used_at as session_last_used_at',
      's.expires_at as session_expires_at',
      's.amr as session_amr',
    ])
    .where('s.cookie_hash', '=', hashSecret(secret))
    .where('s.kind', '=', 'browser')
    .where('s.revoked_at', 'is', null)
    .where('s.expires_at', '>', now)
    .where('s.last_used_at', '>', now - deps.config.browserSessionIdleTtl * 1000)
    .where('u.disabled', '=', 0)
    .executeTakeFirst()
  if (row === undefined) return undefined
  const { session_id, session_last_used_at, session_expires_at, session_amr, ...user } = row
  if (now - session_last_used_at >= TOUCH_INTERVAL_MS) {
    await deps.db
      .updateTable('sessions')
      .set({ last_used_at: now })
      .where('id', '=', session_id)
      .where('revoked_at', 'is', null)
      .execute()
  }
  return {
    id: session_id,
    user,
    expiresAt: session_expires_at,
    secret,
    amr: parseStoredAmr(session_amr),
  }
}

/** Signs the browser out: its session ends, with the `logout` audit event. */
export async function endBrowserSession(
  deps: Pick<BrowserSessionDeps, 'db' | 'clock'>,
  session: { id: string; user: Pick<User, 'id'> },
  client: ClientContext,
): Promise<void> {
  await inTransaction(deps.db, async (tx) => {
    await revokeFamily({ db: tx, clock: deps.clock }, session.id, 'logout')
    await recordAudit(tx, deps.clock, {
      event: 'logout',
      userId: session.user.id,
      sessionId: session.id,
      ip: client.ip,
    })
  })
}
