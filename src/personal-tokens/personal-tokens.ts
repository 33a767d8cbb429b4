import { requireRecentAuthentication } from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import type { Config } from '../config/index.js'
import type { PersonalTokenKind } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { recordRevocation } from '../revocations/log.js'
import { type ClientContext, insertSessionRow, type SessionDeps } from '../sessions/sessions.js'
import { type AccessTokenDeps, issueAccessToken } from '../tokens/access-token.js'
import { requestedGrant } from '../tokens/grant.js'
import { generatePersonalSecret } from './secret.js'

/**
 * Personal access tokens and job tokens (README, "Scripts, pipelines and services"): credentials
 * for scripts and batch jobs that are named, scoped to one audience, expiring and revocable on
 * their own, and are not the user's password.
 *
 * Each is a session row of kind `pat` or `job` plus a `personal_tokens` row. The access tokens
 * made from one carry that session's id as `sid`, so revoking the token is revoking a session: the
 * revocation log names it, and verifiers following the feed, `/v1/authz` and introspection refuse
 * its access tokens within a second (docs/revocation.md). Logging out everywhere, a password
 * change and disabling the user end them like every other session.
 */

export type PersonalTokenDeps = SessionDeps &
  AccessTokenDeps & {
    config: Pick<Config, 'patMaxLifetime' | 'jobTokenMaxTtl' | 'reauthMaxAge'>
  }

/** A user may hold at most this many live tokens: each is a row, and a list is read whole. */
export const MAX_LIVE_TOKENS = 100
/** `expires_in` when none is asked for: 30 days for a PAT, 12 hours for a job token. */
const DEFAULT_PAT_LIFETIME = 30 * 86_400
const DEFAULT_JOB_TTL = 12 * 3_600

export interface NewTokenRequest {
  kind: PersonalTokenKind
  name: string
  audience: string | undefined
  scopes: readonly string[] | undefined
  /** Seconds. */
  expiresIn: number | undefined
}

/** A token as the list shows it: never its secret nor its hash. */
export interface PersonalTokenView {
  id: string
  kind: PersonalTokenKind
  name: string
  prefix: string | null
  audience: string
  scopes: string[]
  created_at: number
  last_used_at: number | null
  expires_at: number
}

export type CreatedToken =
  | { view: PersonalTokenView; kind: 'pat'; secret: string }
  | { view: PersonalTokenView; kind: 'job'; accessToken: string; expiresIn: number }

/**
 * Tokens are managed from a login (a password, federated or device login, or the pages), never
 * with an access token made from a personal or job token: a leaked PAT must not mint more.
 */
async function requireLoginSession(
  t: Pick<SessionDeps, 'db' | 'clock'>,
  claims: { sub: string; sid: string },
): Promise<void> {
  const session = await t.db
    .selectFrom('sessions')
    .select('kind')
    .where('id', '=', claims.sid)
    .where('user_id', '=', claims.sub)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', t.clock())
    .executeTakeFirst()
  if (session === undefined) {
    throw new TesseraError('unauthorized', 'The session of this access token has ended', {
      invalidToken: true,
    })
  }
  if (session.kind !== 'api' && session.kind !== 'browser') {
    throw new TesseraError(
      'forbidden',
      'Tokens are managed from a login session, not with a personal or job token',
    )
  }
}

/**
 * Makes a personal access token (its secret is in the answer, once) or a job token (an access
 * token of its own lifetime, not refreshable). A new credential is a credential change: the
 * session must have proved the account recently (README, "Recent authentication").
 */
export async function createPersonalToken(
  t: PersonalTokenDeps,
  claims: { sub: string; sid: string },
  request: NewTokenRequest,
  client: ClientContext,
): Promise<CreatedToken> {
  const grant = requestedGrant(t.config, {
    audience: request.audience,
    scope: request.scopes === undefined ? undefined : request.scopes.join(' '),
  })
  const max = request.kind === 'pat' ? t.config.patMaxLifetime : t.config.jobTokenMaxTtl
  if (max === 0) throw new TesseraError('forbidden', 'Job tokens are turned off on this server')
  const expiresIn =
    request.expiresIn ??
    Math.min(request.kind === 'pat' ? DEFAULT_PAT_LIFETIME : DEFAULT_JOB_TTL, max)
  if (expiresIn > max) {
    const variable = request.kind === 'pat' ? 'PAT_MAX_LIFETIME' : 'JOB_TOKEN_MAX_TTL'
    throw new TesseraError(
      'validation_failed',
      `expires_in: must be at most ${max} (${variable})`,
      {
        errors: [{ field: 'expires_in', message: `must be at most ${max}` }],
      },
    )
  }
  await requireLoginSession(t, claims)
  await requireRecentAuthentication(t, claims.sid)

  const now = t.clock()
  const expiresAt = now + expiresIn * 1000
  const secret = request.kind === 'pat' ? generatePersonalSecret() : undefined
  const scope = grant.scopes.join(' ')
  const id = await inTransaction(t.db, async (tx) => {
    const live = await tx
      .selectFrom('personal_tokens as p')
      .innerJoin('sessions as s', 's.id', 'p.id')
      .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
      .where('p.user_id', '=', claims.sub)
      .where('s.revoked_at', 'is', null)
      .where('s.expires_at', '>', now)
      .executeTakeFirstOrThrow()
    if (Number(live.n) >= MAX_LIVE_TOKENS) {
      throw new TesseraError(
        'forbidden',
        `At most ${MAX_LIVE_TOKENS} live tokens per account: revoke some first`,
      )
    }
    const sessionId = await insertSessionRow({ db: tx, clock: t.clock }, claims.sub, client, {
      kind: request.kind,
      expiresAt,
      cookieHash: null,
      credentialVersion: undefined,
    })
    await tx
      .insertInto('personal_tokens')
      .values({
        id: sessionId,
        user_id: claims.sub,
        kind: request.kind,
        name: request.name,
        prefix: secret?.prefix ?? null,
        token_hash: secret?.hash ?? null,
        audience: grant.audience,
        scope,
        created_at: now,
        last_used_at: null,
        expires_at: expiresAt,
      })
      .execute()
    await recordAudit(tx, t.clock, {
      event: 'personal_token_created',
      userId: claims.sub,
      sessionId,
      ip: client.ip,
      detail: { kind: request.kind, audience: grant.audience, scope, expires_in: expiresIn },
    })
    return sessionId
  })

  const view: PersonalTokenView = {
    id,
    kind: request.kind,
    name: request.name,
    prefix: secret?.prefix ?? null,
    audience: grant.audience,
    scopes: [...grant.scopes],
    created_at: now,
    last_used_at: null,
    expires_at: expiresAt,
  }
  if (secret !== undefined) return { view, kind: 'pat', secret: secret.secret }
  const user = await t.db
    .selectFrom('users')
    .selectAll()
    .where('id', '=', claims.sub)
    .executeTakeFirstOrThrow()
  const accessToken = await issueAccessToken(t, user, id, { grant, ttlSeconds: expiresIn })
  return { view, kind: 'job', accessToken, expiresIn }
}

/** The user's live tokens (not revoked, not expired), newest first. */
export async function listPersonalTokens(
  t: Pick<SessionDeps, 'db' | 'clock'>,
  claims: { sub: string; sid: string },
): Promise<PersonalTokenView[]> {
  await requireLoginSession(t, claims)
  const rows = await t.db
    .selectFrom('personal_tokens as p')
    .innerJoin('sessions as s', 's.id', 'p.id')
    .select([
      'p.id',
      'p.kind',
      'p.name',
      'p.prefix',
      'p.audience',
      'p.scope',
      'p.created_at',
      'p.last_used_at',
      'p.expires_at',
    ])
    .where('p.user_id', '=', claims.sub)
    .where('s.revoked_at', 'is', null)
    .where('s.expires_at', '>', t.clock())
    .orderBy('p.created_at', 'desc')
    .execute()
  return rows.map((row) => ({
    id: row.id,
    kind: row.kind,
    name: row.name,
    prefix: row.prefix,
    audience: row.audience,
    scopes: row.scope.split(' '),
    created_at: Number(row.created_at),
    last_used_at: row.last_used_at === null ? null : Number(row.last_used_at),
    expires_at: Number(row.expires_at),
  }))
}

/**
 * Revokes one of the user's tokens (`id`), or all of them: their sessions end and the
 * revocation log names each, in one transaction with the audit events. Someone else's token, or
 * one already revoked, is "not found".
 */
export async function revokePersonalTokens(
  t: Pick<SessionDeps, 'db' | 'clock'>,
  claims: { sub: string; sid: string },
  which: { id: string } | 'all',
  client: ClientContext,
): Promise<number> {
  await requireLoginSession(t, claims)
  const now = t.clock()
  return inTransaction(t.db, async (tx) => {
    let update = tx
      .updateTable('sessions')
      .set({ revoked_at: now, revoked_reason: 'token_revoked' })
      .where('user_id', '=', claims.sub)
      .where('kind', 'in', ['pat', 'job'])
      .where('revoked_at', 'is', null)
    if (which !== 'all') update = update.where('id', '=', which.id)
    const revoked = await update.returning('id').execute()
    if (which !== 'all' && revoked.length === 0) {
      throw new TesseraError('not_found', 'No such live token')
    }
    await recordRevocation(
      tx,
      t.clock,
      revoked.map((row) => ({ kind: 'session' as const, sessionId: row.id })),
    )
    for (const row of revoked) {
      await recordAudit(tx, t.clock, {
        event: 'personal_token_revoked',
        userId: claims.sub,
        sessionId: row.id,
        ip: client.ip,
      })
    }
    return revoked.length
  })
}
