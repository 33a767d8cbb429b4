import type { Kysely } from 'kysely'
import { findLiveClient } from '../clients/clients.js'
import type { Database } from '../db/schema.js'
import { parsePasetoTime } from '../paseto/time.js'
import { isSessionLive } from '../sessions/sessions.js'
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
      /** Absent only for tokens issued before Tessera put `email_verified` in them. */
      email_verified?: boolean
      exp: number
      iat: number
      nbf: number
      /** Space-separated; absent for a token issued before Tessera had scopes. */
      scope?: string
      /** RFC 8176 methods of the session's login (README, "Second factors"); absent for none. */
      amr?: string[]
    }

const INACTIVE = { active: false } as const

const seconds = (time: string) => Math.floor((parsePasetoTime(time) ?? 0) / 1000)

/**
 * Unlike local verification at a resource service, introspection also asks the database whether
 * the token's session is still live and its user enabled, so logout and reuse revocation show up
 * at once. A token is inactive from its `exp` on: the clock skew verifiers allow is for clocks
 * other than the issuer's, and here the issuer judges its own token on its own clock. Refresh
 * tokens are not introspected (they are only for Tessera itself).
 */
export async function introspect(
  t: AccessTokenDeps & { db: Kysely<Database> },
  token: string,
): Promise<Introspection> {
  let claims: AccessTokenClaims
  try {
    // Any configured audience: the caller is a service, and `aud` says whom the token is for.
    ;({ claims } = await verifyOwnAccessToken(t, token, 'any'))
  } catch (error) {
    if (error instanceof TokenError) return INACTIVE
    throw error
  }
  if ((parsePasetoTime(claims.exp) ?? 0) <= t.clock()) return INACTIVE
  // A service client's token lives as long as the client (README, "Service clients").
  const live =
    claims.acct === 'client'
      ? (await findLiveClient(t, claims.sub)) !== undefined
      : await isSessionLive(t, claims.sid, claims.sub)
  if (!live) return INACTIVE
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
    ...(claims.email_verified === undefined ? {} : { email_verified: claims.email_verified }),
    exp: seconds(claims.exp),
    iat: seconds(claims.iat),
    nbf: seconds(claims.nbf),
    ...(claims.scope === undefined ? {} : { scope: claims.scope }),
    ...(claims.amr === undefined ? {} : { amr: claims.amr }),
  }
}
