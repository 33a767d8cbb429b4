import type { MiddlewareHandler } from 'hono'
import { TesseraError } from '../../errors.js'
import { assertMfaPolicyAllows } from '../../mfa/policy.js'
import { parsePasetoTime } from '../../paseto/time.js'
import type { LiveRevocations } from '../../revocations/live.js'
import { isSessionLive } from '../../sessions/sessions.js'
import { type AccessTokenDeps, verifyOwnAccessToken } from '../../tokens/access-token.js'
import { TokenError } from '../../verify/errors.js'
import type { AccessTokenClaims } from '../../verify/token.js'
import type { AppEnv } from '../env.js'

/** Extracts the token of an `Authorization: Bearer` header (RFC 6750 §2.1), if any. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header ?? '')
  return match?.[1]
}

/**
 * Verifies a bearer access token against Tessera's own keys; a token that does not verify is a
 * 401 with RFC 6750 `error="invalid_token"` naming the reason.
 */
export async function verifyBearer(
  deps: AccessTokenDeps,
  token: string,
): Promise<AccessTokenClaims> {
  try {
    return (await verifyOwnAccessToken(deps, token)).claims
  } catch (error) {
    if (!(error instanceof TokenError)) throw error
    throw new TesseraError('unauthorized', `The access token is invalid (${error.reason})`, {
      invalidToken: true,
    })
  }
}

/**
 * `verifyBearer` plus this process's copy of the revocation log (no database round trip): a token
 * of a revoked session, of a user disabled after it was issued, or signed with a revoked key is a
 * 401 with the reason `revoked` (docs/revocation.md).
 */
export async function verifyUnrevokedBearer(
  tessera: AccessTokenDeps & { revocations: Pick<LiveRevocations, 'isRevoked'> },
  token: string,
  audience: string = tessera.config.audience,
): Promise<AccessTokenClaims> {
  let verified: { claims: AccessTokenClaims; kid: string }
  try {
    verified = await verifyOwnAccessToken(tessera, token, audience)
  } catch (error) {
    if (!(error instanceof TokenError)) throw error
    throw invalidToken(error.reason)
  }
  const { claims, kid } = verified
  const iat = parsePasetoTime(claims.iat) ?? 0
  if (tessera.revocations.isRevoked({ sid: claims.sid, sub: claims.sub, iat, kid })) {
    throw invalidToken('revoked')
  }
  return claims
}

function invalidToken(reason: string): TesseraError {
  return new TesseraError('unauthorized', `The access token is invalid (${reason})`, {
    invalidToken: true,
  })
}

/**
 * Tessera's own bearer check: the access token must verify and, unlike at resource services, its
 * session must still be live and its user enabled, so a logged-out or revoked session, or a
 * disabled account, cannot read or change the account.
 */
export const requireUser: MiddlewareHandler<AppEnv> = async (c, next) => {
  const tessera = c.get('tessera')
  const claims = await accountClaims(c.req.header('authorization'), tessera)
  if (!(await isSessionLive(tessera, claims.sid, claims.sub))) throw sessionEnded()
  // MFA_REQUIRED_FOR=everyone: a session without a second factor may only enrol one.
  assertMfaPolicyAllows(tessera.config, claims, c.req.method, c.req.path)
  c.set('claims', claims)
  await next()
}

/**
 * `requireUser` without the session check, for a route that checks the session in its own
 * statement (`GET /v1/user/me`, `getLiveAccount`): it must answer `sessionEnded()` when that
 * finds no live session.
 */
export const requireUserToken: MiddlewareHandler<AppEnv> = async (c, next) => {
  const tessera = c.get('tessera')
  const claims = await accountClaims(c.req.header('authorization'), tessera)
  assertMfaPolicyAllows(tessera.config, claims, c.req.method, c.req.path)
  c.set('claims', claims)
  await next()
}

/** The 401 of a token whose session is not live (logout, revocation, expiry, a disabled user). */
export function sessionEnded(): TesseraError {
  return new TesseraError('unauthorized', 'The session of this access token has ended', {
    invalidToken: true,
  })
}

/** The verified claims of an account's bearer token (not a service client's). */
async function accountClaims(
  header: string | undefined,
  tessera: AccessTokenDeps,
): Promise<AccessTokenClaims> {
  if (header === undefined)
    throw new TesseraError('unauthorized', 'A bearer access token is required')
  const token = bearerToken(header)
  if (token === undefined) {
    throw new TesseraError('unauthorized', 'The Authorization header is not a bearer token', {
      invalidToken: true,
    })
  }
  const claims = await verifyBearer(tessera, token)
  // A service client's token is no account's (README, "Service clients"): 401 like a token of
  // no live session, which it also is, with a detail that says why.
  if (claims.acct === 'client') {
    throw new TesseraError('unauthorized', "A service client's token is not an account's", {
      invalidToken: true,
    })
  }
  return claims
}
