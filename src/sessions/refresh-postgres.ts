import { randomUUID } from 'node:crypto'
import { CompiledQuery, type Kysely, PostgresAdapter } from 'kysely'
import type { Config } from '../config/index.js'
import { named } from '../db/named-statements.js'
import type { AccountType, Database } from '../db/schema.js'
import type { Signer } from '../keys/key-ring.js'
import type { AccessTokenDeps } from '../tokens/access-token.js'
import type { AccessGrant } from '../tokens/grant.js'
import { type TokenPair, tokenPairSignedBy } from '../tokens/token-pair.js'
import { parseStoredAmr } from './amr.js'
import { generateRefreshToken } from './refresh-token.js'
import { sealAnswer } from './replay.js'
import type { SessionDeps } from './sessions.js'

/** `RefreshDeps` of refresh.ts, spelled out so that the two modules do not import each other. */
type Deps = SessionDeps &
  AccessTokenDeps & { config: Pick<Config, 'rateLimits' | 'keyEncryptionKey'> }

/** `Refreshed` of refresh.ts: always a rotation, never a replay. */
interface Rotated {
  pair: TokenPair
  sessionId: string
  userId: string
  replayed: false
}

/**
 * The happy path of a refresh on PostgreSQL in two round trips (docs/performance.md, "Refresh on
 * PostgreSQL"): one read, then one autocommit statement that does everything the general
 * transaction of `rotateRefreshToken` would commit, conditionally on the state the read saw.
 * Anything else (an unknown, spent, revoked or expired token, a dead session, a disabled user,
 * the per-session limit, a race lost) answers undefined and the caller runs the general
 * transaction, which holds the one implementation of every refusal, replay and reuse rule
 * (docs/refresh.md). This path only ever commits a rotation the general path would also commit.
 * Both statements run by name on PostgreSQL, parsed once per connection (db/named-statements.ts).
 */

/** The presented token, its session and its user: what the answer needs. No lock. */
const READ = named(`
select t.id, t.status, t.expires_at as token_expires_at,
  s.id as session_id, s.user_id, s.expires_at as session_expires_at, s.revoked_at,
  s.refresh_window_start, s.refresh_count, s.amr,
  u.email, u.account_type, u.verified, u.email_verified, u.role, u.disabled
from refresh_tokens t
join sessions s on s.id = t.family_id
join users u on u.id = s.user_id
where t.token_hash = $1::text`)

interface ReadRow {
  id: string
  status: string
  token_expires_at: number
  session_id: string
  user_id: string
  session_expires_at: number
  revoked_at: number | null
  refresh_window_start: number
  refresh_count: number
  amr: string | null
  email: string
  account_type: AccountType
  verified: number
  email_verified: number
  role: string | null
  disabled: number
}

/**
 * The rotation as one statement. The locks are taken in the general path's order (docs/refresh.md,
 * "Revocation takes the same locks in the same order"): `locked` takes the session row's lock
 * (the lock the general path's first UPDATE takes) before `claimed` can reach the token row, since
 * the token qualifies only through `locked`'s row. Under READ COMMITTED a row changed by a
 * transaction that committed meanwhile is re-read at its newest version before it is locked or
 * updated, so every condition below holds for the rows as they are when written:
 *
 * - `locked`: the session is live, its `amr` is the one signed into the answer, and the refresh is
 *   within the per-session limit (the count it would have after this refresh);
 * - `claimed`: the token is still `active` and unexpired, and the user still enabled with the
 *   fields the access token carries; it keeps the sealed answer for the reuse interval;
 * - `touched`, `forgotten`, `child` run only for a claimed token: the session's last use and
 *   window, the parent's kept answer forgotten, the child inserted.
 *
 * Of N concurrent presentations one claims the token; the others find it `rotated` at its newest
 * version, claim nothing, write nothing (the session is only updated after a claim, so a lost race
 * does not count against the limit) and go to the general path, which answers the replay or the
 * reuse. One statement is one transaction: it commits whole or not at all (crash safety), with
 * `synchronous_commit` as configured (on).
 */
const WRITE = named(`
with locked as materialized (
  select id from sessions
  where id = $1::text and user_id = $2::text and revoked_at is null and expires_at > $3::bigint
    and amr is not distinct from $4::text
    and ($5::integer = 0
      or (case when refresh_window_start <= $6::bigint then 1 else refresh_count + 1 end)
        <= $5::integer)
  for no key update
),
claimed as (
  update refresh_tokens
  set status = 'rotated', used_at = $3::bigint, replay_sealed = $7::text, replay_until = $8::bigint
  where id = $9::text and family_id = (select id from locked)
    and status = 'active' and expires_at > $3::bigint
    and exists (
      select 1 from users
      where id = $2::text and disabled = 0 and email = $10::text and account_type = $11::text
        and verified = $12::integer and email_verified = $13::integer
        and role is not distinct from $14::text)
  returning id, parent_id, family_id
),
touched as (
  update sessions
  set last_used_at = $3::bigint,
    refresh_window_start =
      case when refresh_window_start <= $6::bigint then $3::bigint else refresh_window_start end,
    refresh_count = case when refresh_window_start <= $6::bigint then 1 else refresh_count + 1 end
  where id = (select family_id from claimed)
  returning id
),
forgotten as (
  update refresh_tokens set replay_sealed = null, replay_until = null
  where id = (select parent_id from claimed) and replay_until is not null
  returning id
),
child as (
  insert into refresh_tokens
    (id, family_id, user_id, token_hash, parent_id, status, created_at, expires_at, used_at)
  select $15::text, family_id, $2::text, $16::text, id, 'active', $3::bigint, $17::bigint, null
  from claimed
  returning id
)
select count(*)::integer as rotated from child`)

/** Whether `db` runs on PostgreSQL (the dialect this path is written for). */
export function onPostgres(db: Kysely<Database>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

/**
 * Rotates `hash`'s token in two round trips when it is the happy case, else undefined (nothing
 * written; the general path decides). `now`, `signer` and `grant` are the caller's.
 */
export async function rotateOnPostgres(
  deps: Deps,
  hash: string,
  now: number,
  signer: Signer,
  grant: AccessGrant | undefined,
): Promise<Rotated | undefined> {
  if (!onPostgres(deps.db)) return undefined
  const read = await deps.db.executeQuery<ReadRow>(CompiledQuery.raw(READ, [hash]))
  const row = read.rows[0]
  const windowOver = now - deps.config.rateLimits.windowSeconds * 1000
  const limit = deps.config.rateLimits.refreshPerSession
  const count =
    row === undefined || row.refresh_window_start <= windowOver ? 1 : row.refresh_count + 1
  if (
    row === undefined ||
    row.status !== 'active' ||
    row.token_expires_at <= now ||
    row.revoked_at !== null ||
    row.session_expires_at <= now ||
    row.disabled !== 0 ||
    (limit > 0 && count > limit)
  ) {
    return undefined
  }

  const refreshExpiresAt = Math.min(
    now + deps.config.refreshTokenTtl * 1000,
    row.session_expires_at,
  )
  const child = generateRefreshToken()
  const user = {
    id: row.user_id,
    email: row.email,
    account_type: row.account_type,
    verified: row.verified,
    email_verified: row.email_verified,
    role: row.role,
  }
  const pair = tokenPairSignedBy(
    deps,
    signer,
    user,
    {
      sessionId: row.session_id,
      refreshToken: child.token,
      refreshExpiresAt,
      amr: parseStoredAmr(row.amr),
    },
    grant,
  )
  // The claimed token keeps this answer for the reuse interval, as in the general path.
  const interval = deps.config.refreshReuseInterval * 1000
  const kek = deps.config.keyEncryptionKey
  const keep = interval > 0 && kek !== undefined
  const write = await deps.db.executeQuery<{ rotated: number }>(
    CompiledQuery.raw(WRITE, [
      row.session_id,
      row.user_id,
      now,
      row.amr,
      limit,
      windowOver,
      keep ? sealAnswer(kek, row.id, pair) : null,
      keep ? now + interval : null,
      row.id,
      row.email,
      row.account_type,
      row.verified,
      row.email_verified,
      row.role,
      randomUUID(),
      child.hash,
      refreshExpiresAt,
    ]),
  )
  if (write.rows[0]?.rotated !== 1) return undefined
  return { pair, sessionId: row.session_id, userId: row.user_id, replayed: false }
}
