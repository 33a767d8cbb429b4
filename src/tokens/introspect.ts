import { type Kysely, sql } from 'kysely'
import { preparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'
import { parsePasetoTime } from '../paseto/time.js'
import { TokenError } from '../verify/errors.js'
import type { AccessTokenClaims } from '../verify/token.js'
import { type AccessTokenDeps, verifyOwnAccessToken } from './access-token.js'

/** RFC 7662 §2.2. Inactive is exactly `{ active: false }`: no hint why. */
export type Introspection =
  | { active: false }
  | {
      active: true
      token_type: 'Bearer'
      sub: string
      iss: string
      aud: string
      jti: string
      sid: string
      acct: AccessTokenClaims['acct']
      verified: boolean
      exp: number
      iat: number
      nbf: number
    }

const INACTIVE = { active: false } as const

const seconds = (time: string) => Math.floor((parsePasetoTime(time) ?? 0) / 1000)

const liveSessionOfEnabledUser = preparedQuery(
  (db, p: { sessionId: string; userId: string; now: number }) =>
    db
      .selectFrom('sessions as s')
      .innerJoin('users as u', 'u.id', 's.user_id')
      .select(sql<number>`1`.as('live'))
      .where('s.id', '=', p.sessionId)
      .where('s.user_id', '=', p.userId)
      .where('s.revoked_at', 'is', null)
      .where('s.expires_at', '>', p.now)
      .where('u.disabled', '=', 0),
)

/**
 * Unlike local verification at a resource service, introspection also asks the database whether
 * the token's session is still live and its user enabled, so logout and reuse revocation show up
 * at once. Refresh tokens are not introspected (they are only for Tessera itself).
 */
export async function introspect(
  t: AccessTokenDeps & { db: Kysely<Database> },
  token: string,
): Promise<Introspection> {
  let claims: AccessTokenClaims
  try {
    ;({ claims } = await verifyOwnAccessToken(t, token))
  } catch (error) {
    if (error instanceof TokenError) return INACTIVE
    throw error
  }
  const live = await liveSessionOfEnabledUser.first(t.db, {
    sessionId: claims.sid,
    userId: claims.sub,
    now: t.clock(),
  })
  if (live === undefined) return INACTIVE
  return {
    active: true,
    token_type: 'Bearer',
    sub: claims.sub,
    iss: claims.iss,
    aud: claims.aud,
    jti: claims.jti,
    sid: claims.sid,
    acct: claims.acct,
    verified: claims.verified,
    exp: seconds(claims.exp),
    iat: seconds(claims.iat),
    nbf: seconds(claims.nbf),
  }
}
