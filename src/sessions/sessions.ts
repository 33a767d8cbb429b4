import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import { preparedQuery } from '../db/prepared.js'
import type { Database, SessionKind } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { recordRevocation } from '../revocations/log.js'
import { storedAmr } from './amr.js'
import { generateRefreshToken } from './refresh-token.js'
import { insertRefreshToken } from './rotation-statements.js'

export interface SessionDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'refreshTokenTtl' | 'sessionAbsoluteTtl' | 'refreshReuseInterval'>
}

export interface ClientContext {
  ip: string | null
  userAgent: string | null
}

export interface IssuedRefreshToken {
  sessionId: string
  refreshToken: string
  /** Epoch ms: the earlier of the idle expiry and the session's absolute expiry. */
  refreshExpiresAt: number
  /** The session's RFC 8176 methods, which its access tokens carry (`sessions.amr`). */
  amr?: readonly string[] | undefined
}

export type RevocationReason =
  | 'logout'
  | 'logout_all'
  | 'refresh_token_reused'
  | 'password_changed'
  | 'password_reset'
  | 'session_deleted'
  | 'user_disabled'
  /** Ended by a superuser (`POST /v1/admin/users/{id}/sessions/revoke`). */
  | 'revoked_by_admin'
  | 'user_deleted'
  /** A browser session ended by a new sign-in in the same browser (README, "Pages"). */
  | 'replaced'
  /** A personal access token or job token revoked by its owner. */
  | 'token_revoked'
  /** An administrator reset the user's second factors (README, "Second factors"). */
  | 'mfa_reset'

const MAX_USER_AGENT = 256

/**
 * Starts a login session: one family with its first refresh token, atomically.
 *
 * The caller checked the user's credential before this (a password, a login code); see
 * `insertSessionRow` for why that check cannot be overtaken by a password change or a disable.
 * Inside a caller's transaction (`openSession`, which adds the audit event) it is part of that
 * one.
 */
export async function startSession(
  deps: SessionDeps,
  userId: string,
  client: ClientContext,
  credentialVersion?: number,
  amr?: readonly string[],
): Promise<IssuedRefreshToken> {
  const now = deps.clock()
  const sessionExpiresAt = now + deps.config.sessionAbsoluteTtl * 1000
  const refreshExpiresAt = Math.min(now + deps.config.refreshTokenTtl * 1000, sessionExpiresAt)
  const { token, hash } = generateRefreshToken()
  const sessionId = await inTransaction(deps.db, async (tx) => {
    const id = await insertSessionRow({ db: tx, clock: deps.clock }, userId, client, {
      kind: 'api',
      expiresAt: sessionExpiresAt,
      cookieHash: null,
      credentialVersion,
      amr,
    })
    await insertRefreshToken.execute(tx, {
      id: randomUUID(),
      familyId: id,
      userId,
      hash,
      parentId: null,
      now,
      expiresAt: refreshExpiresAt,
    })
    return id
  })
  return { sessionId, refreshToken: token, refreshExpiresAt, amr }
}

export interface NewSessionRow {
  kind: SessionKind
  /** Epoch ms: the session's absolute expiry. */
  expiresAt: number
  /** Browser sessions: the SHA-256 of their cookie's secret. */
  cookieHash: string | null
  /** The credential version a password check saw; undefined when no password was checked. */
  credentialVersion: number | undefined
  /** RFC 8176 methods of the login (README, "Second factors"); none for personal tokens. */
  amr?: readonly string[] | undefined
}

/**
 * Inserts a session row for a user whose credential was just checked, and returns its id. Reads
 * of the user are not locks: a password change or a disable could commit between that check and
 * here. So this first takes the user's row lock with a conditional write that requires the user
 * still enabled and, for a password login, still at the credential version the check saw. A
 * change that commits first makes it refuse, with nothing committed; a change that commits later
 * runs its session revocation after this session exists and ends it (README, "Passwords and
 * login"). Call it inside the transaction that completes the session (API sessions add their
 * first refresh token, browser sessions replace the browser's previous one).
 */
export async function insertSessionRow(
  deps: Pick<SessionDeps, 'db' | 'clock'>,
  userId: string,
  client: ClientContext,
  row: NewSessionRow,
): Promise<string> {
  const tx = deps.db
  const now = deps.clock()
  const sessionId = randomUUID()
  const locked =
    row.credentialVersion === undefined
      ? await lockEnabledUser.execute(tx, { userId })
      : await lockUserAtVersion.execute(tx, { userId, version: row.credentialVersion })
  if (locked.rows.length === 0) {
    const user = await tx
      .selectFrom('users')
      .select('disabled')
      .where('id', '=', userId)
      .executeTakeFirst()
    if (user !== undefined && user.disabled !== 0) {
      throw new TesseraError('account_disabled', 'This account is disabled')
    }
    throw new TesseraError('invalid_credentials', 'Invalid email or password')
  }
  await insertSession.execute(tx, {
    id: sessionId,
    userId,
    now,
    expiresAt: row.expiresAt,
    userAgent: client.userAgent?.slice(0, MAX_USER_AGENT) ?? null,
    ip: client.ip,
    kind: row.kind,
    cookieHash: row.cookieHash,
    amr: storedAmr(row.amr),
  })
  return sessionId
}

/**
 * The user's row lock of `insertSessionRow`: a write that changes nothing (both dialects), which
 * matches only an enabled user, and with `version` only one still at that credential version.
 */
const lockEnabledUser = preparedQuery((db, p: { userId: string }) =>
  enabledUserLock(db, p.userId).returning('id'),
)
const lockUserAtVersion = preparedQuery((db, p: { userId: string; version: number }) =>
  enabledUserLock(db, p.userId).where('credential_version', '=', p.version).returning('id'),
)

function enabledUserLock(db: Kysely<Database>, userId: string) {
  return db
    .updateTable('users')
    .set((eb) => ({ credential_version: eb.ref('credential_version') }))
    .where('id', '=', userId)
    .where('disabled', '=', 0)
}

const insertSession = preparedQuery(
  (
    db,
    p: {
      id: string
      userId: string
      now: number
      expiresAt: number
      userAgent: string | null
      ip: string | null
      kind: SessionKind
      cookieHash: string | null
      amr: string | null
    },
  ) =>
    db.insertInto('sessions').values({
      id: p.id,
      user_id: p.userId,
      created_at: p.now,
      last_used_at: p.now,
      expires_at: p.expiresAt,
      user_agent: p.userAgent,
      ip: p.ip,
      revoked_at: null,
      revoked_reason: null,
      kind: p.kind,
      cookie_hash: p.cookieHash,
      amr: p.amr,
    }),
)

/**
 * Ends one family: the session is marked and its live tokens become `revoked`. Rotated and
 * superseded tokens keep their status so that replaying one still reads as reuse, and an answer
 * kept for the reuse interval is deleted with the rest (docs/refresh.md, "The reuse interval").
 * A session this call revokes gets its revocation log entry in the same transaction, which ends
 * its access tokens at verifiers (docs/revocation.md).
 *
 * The session row is written first, as a refresh does (refresh.ts): that row lock orders the two.
 * A rotation that got it first has committed its child before the token update below runs (a new
 * statement, so under PostgreSQL's READ COMMITTED it sees that child); one that comes second
 * finds the session revoked.
 */
export async function revokeFamily(
  deps: Pick<SessionDeps, 'db' | 'clock'>,
  familyId: string,
  reason: RevocationReason,
): Promise<void> {
  const now = deps.clock()
  await inTransaction(deps.db, async (tx) => {
    const revoked = await tx
      .updateTable('sessions')
      .set({ revoked_at: now, revoked_reason: reason })
      .where('id', '=', familyId)
      .where('revoked_at', 'is', null)
      .returning('id')
      .execute()
    await tx
      .updateTable('refresh_tokens')
      .set({ status: 'revoked' })
      .where('family_id', '=', familyId)
      .where('status', '=', 'active')
      .execute()
    await tx
      .updateTable('refresh_tokens')
      .set({ replay_sealed: null, replay_until: null })
      .where('family_id', '=', familyId)
      .where('replay_until', 'is not', null)
      .execute()
    await recordSessionRevocations(tx, deps.clock, revoked)
  })
}

/** One log entry per session just revoked (none when it already was). */
function recordSessionRevocations(
  tx: Kysely<Database>,
  clock: SessionDeps['clock'],
  revoked: ReadonlyArray<{ id: string }>,
): Promise<void> {
  return recordRevocation(
    tx,
    clock,
    revoked.map((row) => ({ kind: 'session' as const, sessionId: row.id })),
  )
}

/**
 * Ends every session of a user, optionally sparing one (the caller's own). Sessions first, then
 * their tokens (and the answers kept for the reuse interval), in the same order as a refresh and
 * `revokeFamily` (see there); then a revocation log entry per session ended, in the same
 * transaction.
 */
export async function revokeUserSessions(
  deps: Pick<SessionDeps, 'db' | 'clock'>,
  userId: string,
  reason: RevocationReason,
  exceptSessionId?: string,
): Promise<void> {
  const now = deps.clock()
  await inTransaction(deps.db, async (tx) => {
    let sessions = tx
      .updateTable('sessions')
      .set({ revoked_at: now, revoked_reason: reason })
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
    if (exceptSessionId !== undefined) sessions = sessions.where('id', '!=', exceptSessionId)
    const revoked = await sessions.returning('id').execute()
    // Only tokens of revoked sessions: a session another transaction opens meanwhile keeps its own.
    const revokedSessions = tx
      .selectFrom('sessions')
      .select('id')
      .where('user_id', '=', userId)
      .where('revoked_at', 'is not', null)
    await tx
      .updateTable('refresh_tokens')
      .set({ status: 'revoked' })
      .where('user_id', '=', userId)
      .where('status', '=', 'active')
      .where('family_id', 'in', revokedSessions)
      .execute()
    await tx
      .updateTable('refresh_tokens')
      .set({ replay_sealed: null, replay_until: null })
      .where('user_id', '=', userId)
      .where('replay_until', 'is not', null)
      .where('family_id', 'in', revokedSessions)
      .execute()
    await recordSessionRevocations(tx, deps.clock, revoked)
  })
}

export interface SessionView {
  id: string
  kind: SessionKind
  created_at: number
  last_used_at: number
  expires_at: number
  user_agent: string | null
  ip: string | null
}

export interface ListSessionsDeps extends Pick<SessionDeps, 'db' | 'clock'> {
  config: Pick<Config, 'browserSessionIdleTtl'>
}

/**
 * The user's live sessions: not revoked and within the absolute expiry; an API session with a
 * live refresh token, a browser session used within BROWSER_SESSION_IDLE_TTL (it has no refresh
 * tokens).
 */
export async function listSessions(deps: ListSessionsDeps, userId: string): Promise<SessionView[]> {
  const now = deps.clock()
  const idleSince = now - deps.config.browserSessionIdleTtl * 1000
  return deps.db
    .selectFrom('sessions as s')
    .select([
      's.id',
      's.kind',
      's.created_at',
      's.last_used_at',
      's.expires_at',
      's.user_agent',
      's.ip',
    ])
    .where('s.user_id', '=', userId)
    .where('s.revoked_at', 'is', null)
    .where('s.expires_at', '>', now)
    .where((eb) =>
      eb.or([
        eb.and([
          eb('s.kind', '=', 'api'),
          eb.exists(
            eb
              .selectFrom('refresh_tokens as t')
              .select('t.id')
              .whereRef('t.family_id', '=', 's.id')
              .where('t.status', '=', 'active')
              .where('t.expires_at', '>', now),
          ),
        ]),
        eb.and([eb('s.kind', '=', 'browser'), eb('s.last_used_at', '>', idleSince)]),
      ]),
    )
    .orderBy('s.created_at', 'desc')
    .execute()
}

/**
 * True when the session exists, belongs to `userId`, is not revoked, has not reached its absolute
 * expiry, and its user is enabled: the check of every bearer route Tessera answers itself.
 */
export async function isSessionLive(
  deps: Pick<SessionDeps, 'db' | 'clock'>,
  sessionId: string,
  userId: string,
): Promise<boolean> {
  return (await liveSession.first(deps.db, { sessionId, userId, now: deps.clock() })) !== undefined
}

// On every bearer request Tessera answers itself (see db/prepared.ts).
const liveSession = preparedQuery((db, p: { sessionId: string; userId: string; now: number }) =>
  db
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select('s.id')
    .where('s.id', '=', p.sessionId)
    .where('s.user_id', '=', p.userId)
    .where('s.revoked_at', 'is', null)
    .where('s.expires_at', '>', p.now)
    .where('u.disabled', '=', 0),
)

/**
 * When the session's holder last proved the account: the login that started it, or a later
 * re-authentication (README, "Recent authentication"). Undefined when the session is not live,
 * and for the session of a personal or job token, whose making proved nothing of its holder.
 */
export async function sessionAuthenticatedAt(
  deps: Pick<SessionDeps, 'db' | 'clock'>,
  sessionId: string,
): Promise<number | undefined> {
  const row = await deps.db
    .selectFrom('sessions')
    .select(['created_at', 'authenticated_at'])
    .where('id', '=', sessionId)
    .where('kind', 'in', ['api', 'browser'])
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', deps.clock())
    .executeTakeFirst()
  return row === undefined ? undefined : (row.authenticated_at ?? row.created_at)
}

/** Records a fresh proof of the account on a live session; false when the session has ended. */
export async function markSessionAuthenticated(
  deps: Pick<SessionDeps, 'db' | 'clock'>,
  sessionId: string,
): Promise<boolean> {
  const now = deps.clock()
  const result = await deps.db
    .updateTable('sessions')
    .set({ authenticated_at: now })
    .where('id', '=', sessionId)
    .where('kind', 'in', ['api', 'browser'])
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
