import { recordAudit } from '../audit/audit.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import type { ClientContext, SessionDeps } from '../sessions/sessions.js'
import { type AccessTokenDeps, issueAccessToken } from '../tokens/access-token.js'
import { type GrantRequest, requestedGrant } from '../tokens/grant.js'
import { hashPersonalSecret, isPersonalSecret } from './secret.js'

/** RFC 8693 §2.1 `grant_type`. */
export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange'
/**
 * The `subject_token_type` of a Tessera personal access token. RFC 8693 §3 lets a server name
 * its own types; a PAT is none of the registered ones (it is not itself an access token).
 */
export const PAT_TOKEN_TYPE = 'urn:tessera:params:oauth:token-type:pat'
/** RFC 8693 §3: what the exchange issues. */
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** RFC 8693 §2.2.1. No refresh token: the script exchanges its PAT again. */
export interface ExchangedToken {
  access_token: string
  issued_token_type: typeof ACCESS_TOKEN_TYPE
  token_type: 'Bearer'
  expires_in: number
  scope: string
}

/**
 * Swaps a personal access token for a short-lived access token (ACCESS_TOKEN_TTL at most, and
 * never past the PAT's own expiry) for the PAT's audience and scopes, or a narrower `scope`
 * (README, "Scripts, pipelines and services"). Its `sid` is the PAT's session, so revoking the
 * PAT ends it.
 *
 * Answers, in this order: `invalid_subject_token` (not a PAT, a wrong checksum, unknown),
 * `personal_token_revoked`, `personal_token_expired`, `access_denied` (disabled), then
 * `invalid_target` / `invalid_scope` for an audience or scope beyond the PAT's. The lookup is by
 * the secret's hash, so only the holder of the exact secret learns which of these it is.
 */
export async function exchangePersonalToken(
  t: Pick<SessionDeps, 'db' | 'clock'> & AccessTokenDeps,
  subjectToken: string,
  request: GrantRequest,
  client: ClientContext,
): Promise<ExchangedToken> {
  if (!isPersonalSecret(subjectToken)) {
    throw new TesseraError('invalid_subject_token', 'subject_token is not a valid personal token')
  }
  const row = await t.db
    .selectFrom('personal_tokens as p')
    .innerJoin('sessions as s', 's.id', 'p.id')
    .innerJoin('users as u', 'u.id', 'p.user_id')
    .select(['p.id', 'p.user_id', 'p.audience', 'p.scope', 's.revoked_at', 's.expires_at'])
    .select('u.disabled')
    .where('p.token_hash', '=', hashPersonalSecret(subjectToken))
    .where('p.kind', '=', 'pat')
    .executeTakeFirst()
  if (row === undefined) {
    throw new TesseraError('invalid_subject_token', 'subject_token is not a valid personal token')
  }
  const now = t.clock()
  if (row.revoked_at !== null) throw revoked()
  if (Number(row.expires_at) <= now) {
    throw new TesseraError('personal_token_expired', 'This personal access token has expired')
  }
  // RFC 6749's code, as the device grant answers a disabled account.
  if (row.disabled !== 0) throw new TesseraError('access_denied', 'This account is disabled')
  // Scopes no longer configured (SCOPES changed since) are dropped, never granted.
  const held = row.scope.split(' ').filter((name) => t.config.scopes.includes(name))
  const grant = requestedGrant(t.config, request, { audience: row.audience, scopes: held })
  if (grant.scopes.length === 0) {
    throw new TesseraError('invalid_scope', 'None of this token’s scopes is configured any more')
  }

  const user = await inTransaction(t.db, async (tx) => {
    // Conditional on the session still live: a revocation that committed since the read wins.
    const used = await tx
      .updateTable('sessions')
      .set({ last_used_at: now })
      .where('id', '=', row.id)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst()
    if (used.numUpdatedRows === 0n) throw revoked()
    await tx
      .updateTable('personal_tokens')
      .set({ last_used_at: now })
      .where('id', '=', row.id)
      .execute()
    await recordAudit(tx, t.clock, {
      event: 'personal_token_used',
      userId: row.user_id,
      sessionId: row.id,
      ip: client.ip,
      detail: { audience: grant.audience, scope: grant.scopes.join(' ') },
    })
    return tx
      .selectFrom('users')
      .selectAll()
      .where('id', '=', row.user_id)
      .executeTakeFirstOrThrow()
  })
  const remaining = Math.floor((Number(row.expires_at) - now) / 1000)
  const ttl = Math.max(1, Math.min(t.config.accessTokenTtl, remaining))
  return {
    access_token: await issueAccessToken(t, user, row.id, { grant, ttlSeconds: ttl }),
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: ttl,
    scope: grant.scopes.join(' '),
  }
}

const revoked = () =>
  new TesseraError('personal_token_revoked', 'This personal access token has been revoked')
