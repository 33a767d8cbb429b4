import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { User } from '../db/schema.js'
import type { KeyRing, Signer } from '../keys/key-ring.js'
import { formatPasetoTime } from '../paseto/time.js'
import { type AccessTokenClaims, VerifiedTokenCache, verifyAccessToken } from '../verify/token.js'
import { type AccessGrant, defaultGrant } from './grant.js'
import { longestTokenLifetime } from './lifetime.js'
import { signV4PublicSync } from './sign.js'

/** The user fields an access token carries. */
export type TokenSubject = Pick<
  User,
  'id' | 'email' | 'account_type' | 'verified' | 'email_verified' | 'role'
>

export interface AccessTokenDeps {
  keys: KeyRing
  clock: Clock
  config: Pick<
    Config,
    'issuer' | 'audience' | 'audiences' | 'scopes' | 'accessTokenTtl' | 'jobTokenMaxTtl'
  >
}

/**
 * What an access token is signed for: the grant (audience and scopes; by default Tessera's own
 * audience and every scope) and, for a job token only, a lifetime other than ACCESS_TOKEN_TTL.
 */
export interface SignOptions {
  grant?: AccessGrant
  ttlSeconds?: number
  /** The session's RFC 8176 methods (`sessions.amr`); none for personal and job tokens. */
  amr?: readonly string[] | undefined
}

/** Signs a v4.public access token for a user's session (claims and footer as in openapi.yaml). */
export async function issueAccessToken(
  deps: AccessTokenDeps,
  user: TokenSubject,
  sessionId: string,
  options: SignOptions = {},
): Promise<string> {
  return signAccessToken(deps, await deps.keys.signer(), user, sessionId, options)
}

/**
 * `issueAccessToken` with a signer fetched beforehand: inside a database transaction, where the
 * key ring must not query the database itself (SQLite has one connection, held by the
 * transaction). Synchronous, so that it also runs inside a synchronous SQLite transaction
 * (src/sessions/sqlite-rotation.ts).
 */
export function signAccessToken(
  deps: Pick<AccessTokenDeps, 'clock' | 'config'>,
  signer: Signer,
  user: TokenSubject,
  sessionId: string,
  options: SignOptions = {},
): string {
  const now = Math.floor(deps.clock() / 1000) * 1000
  const grant = options.grant ?? defaultGrant(deps.config)
  const ttl = options.ttlSeconds ?? deps.config.accessTokenTtl
  const claims: AccessTokenClaims = {
    iss: deps.config.issuer,
    sub: user.id,
    aud: grant.audience,
    iat: formatPasetoTime(now),
    nbf: formatPasetoTime(now),
    exp: formatPasetoTime(now + ttl * 1000),
    jti: randomUUID(),
    sid: sessionId,
    acct: user.account_type,
    verified: user.verified === 1,
    email: user.email,
    email_verified: user.email_verified === 1,
    ...(user.role === null ? {} : { role: user.role }),
    scope: grant.scopes.join(' '),
    ...(options.amr === undefined || options.amr.length === 0 ? {} : { amr: [...options.amr] }),
  }
  const footer = Buffer.from(JSON.stringify({ kid: signer.kid }))
  return signV4PublicSync(signer.key, { ...claims }, footer)
}

/**
 * Checks an access token against the keys this deployment publishes. `audience`: Tessera's own
 * by default (its own routes accept nothing else); `any` accepts every configured audience
 * (introspection, which answers for the services).
 */
export function verifyOwnAccessToken(
  deps: AccessTokenDeps,
  token: string,
  audience: string | 'any' = deps.config.audience,
): Promise<{ claims: AccessTokenClaims; kid: string }> {
  return verifyAccessToken(
    token,
    (kid) => deps.keys.publicKey(kid),
    {
      issuer: deps.config.issuer,
      audience: audience === 'any' ? deps.config.audiences : audience,
      now: deps.clock,
      // Tessera signs nothing longer: a longer token was not made by this deployment's rules.
      maxLifetimeSeconds: longestTokenLifetime(deps.config),
    },
    verifiedTokens(deps),
  )
}

/**
 * One cache of verified tokens per key ring, that is per running Tessera: a client presents its
 * access token on every request, and the Ed25519 verification was most of the cost of /v1/authz,
 * introspection and /v1/user/me (docs/performance.md). Session, user and key revocation are
 * checked on every request as before (the cache holds no answer about them; a revoked key is a
 * miss).
 */
const caches = new WeakMap<AccessTokenDeps['keys'], VerifiedTokenCache>()

function verifiedTokens(deps: AccessTokenDeps): VerifiedTokenCache {
  let cache = caches.get(deps.keys)
  if (cache === undefined) {
    cache = new VerifiedTokenCache(4096, deps.clock)
    caches.set(deps.keys, cache)
  }
  return cache
}
