/**
 * Hono middleware for resource services, in the factory style of Hono's own `bearerAuth` and
 * `jwt`: `auth()` reads and verifies the bearer token once and sets `c.get('auth')`; the
 * `require*()` guards then decide per route.
 *
 * Failures are RFC 9457 `application/problem+json` bodies with the codes of Tessera's API
 * (`unauthorized` 401, `not_verified`/`forbidden` 403, `service_unavailable` 503) and the RFC 6750
 * `WWW-Authenticate` challenge. Like `bearerAuth`, they are thrown as an `HTTPException` carrying
 * the finished response: an app's own `onError` should answer `err.getResponse()` for those.
 */
import type { Context, MiddlewareHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { TokenError, type TokenErrorReason } from './errors.js'
import { KeySetUnavailableError } from './key-set.js'
import { RevocationsUnavailableError } from './revocation-feed.js'
import type { AccessTokenClaims, AccountType } from './token.js'
import type { Verifier } from './verifier.js'

/** The Hono environment the middleware sets: `c.get('auth')` is the verified claims, if any. */
export interface AuthEnv {
  Variables: {
    auth: AccessTokenClaims | undefined
  }
}

/**
 * A route open without a token: a path, or a method and a path. A path matches exactly, or, when
 * it ends in `/*`, every path below that prefix (`/projects/*` matches `/projects/42` and
 * `/projects/42/files`, not `/projects` itself: list that separately). Paths are compared as
 * Hono's router sees them (`c.req.path`), case-sensitively. `method` is matched without regard to
 * case; a `GET` entry also covers `HEAD`, which Hono answers with the GET handler.
 */
export type PublicRoute = string | { method?: string; path: string }

export interface AuthOptions {
  verifier: Verifier
  /** Routes that answer without a token (a valid token there is still read). Default none. */
  publicRoutes?: ReadonlyArray<PublicRoute>
  /** The `realm` of the `WWW-Authenticate` challenge. Default `"tessera"`. */
  realm?: string
}

type ProblemCode =
  | 'unauthorized'
  | 'not_verified'
  | 'forbidden'
  | 'insufficient_scope'
  | 'mfa_step_up_required'
  | 'service_unavailable'

const TITLES: Record<ProblemCode, string> = {
  unauthorized: 'Authentication required',
  not_verified: 'Account not verified',
  forbidden: 'Forbidden',
  insufficient_scope: 'Insufficient scope',
  mfa_step_up_required: 'Multi-factor authentication required',
  service_unavailable: 'Service unavailable',
}

const STATUS = {
  unauthorized: 401,
  not_verified: 403,
  forbidden: 403,
  insufficient_scope: 403,
  mfa_step_up_required: 403,
  service_unavailable: 503,
} as const

const REASON_DETAIL: Record<TokenErrorReason, string> = {
  malformed: 'The access token is malformed',
  unsupported_token: 'Only v4.public access tokens are accepted',
  bad_footer: 'The access token footer is invalid',
  unknown_key: 'The access token is signed with an unknown key',
  bad_signature: 'The access token signature does not verify',
  invalid_claims: 'The access token claims are invalid',
  expired: 'The access token has expired',
  not_yet_valid: 'The access token is not valid yet',
  issued_in_future: 'The access token was issued in the future',
  lifetime_too_long: 'The access token lives longer than allowed',
  wrong_issuer: 'The access token is from another issuer',
  wrong_audience: 'The access token is for another audience',
  revoked: 'The access token has been revoked',
}

/** RFC 6750 §2.1 `Bearer b64token`; the same pattern Hono's `bearerAuth` uses. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i
/** Seconds a client should wait before retrying while the key set cannot be fetched. */
const KEYS_RETRY_AFTER_SECONDS = 5

/** Realms given per `auth()` call, so the `require*()` guards after it challenge with the same. */
const realms = new WeakMap<Context, string>()
const KEYS_UNAVAILABLE = Symbol('keys unavailable')
const REVOCATIONS_UNAVAILABLE = Symbol('revocations unavailable')
/**
 * Why a token presented on a public route was not accepted (the detail of a refused token,
 * KEYS_UNAVAILABLE or REVOCATIONS_UNAVAILABLE), so a `require*()` guard further on answers as a
 * protected route would.
 */
const unaccepted = new WeakMap<
  Context,
  string | typeof KEYS_UNAVAILABLE | typeof REVOCATIONS_UNAVAILABLE
>()

/** The `auth` variable of a context whose environment extends `AuthEnv`. */
// biome-ignore lint/suspicious/noExplicitAny: any app's environment; only `auth` is read or set.
const authContext = (c: Context<any>): Context<AuthEnv> => c as unknown as Context<AuthEnv>

const quoted = (value: string): string => `"${value.replace(/["\\]/g, '')}"`

type Challenge =
  | {
      error: 'invalid_token' | 'insufficient_scope' | 'insufficient_user_authentication'
      description: string
      scope?: string
    }
  | undefined

/** Throws the problem+json answer for `code`, with the RFC 6750 challenge for 401 and 403. */
function fail(c: Context, code: ProblemCode, detail: string, challenge?: Challenge): never {
  const status = STATUS[code]
  const headers = new Headers({
    'Content-Type': 'application/problem+json',
    'Cache-Control': 'no-store',
  })
  if (status === 503) {
    headers.set('Retry-After', String(KEYS_RETRY_AFTER_SECONDS))
  } else {
    let value = `Bearer realm=${quoted(realms.get(c) ?? 'tessera')}`
    // RFC 6750 §3.1: no error code when the request carried no authentication at all.
    if (challenge !== undefined) {
      value += `, error="${challenge.error}", error_description=${quoted(challenge.description)}`
      if (challenge.scope !== undefined) value += `, scope=${quoted(challenge.scope)}`
    }
    headers.set('WWW-Authenticate', value)
  }
  const body = JSON.stringify({
    type: `urn:tessera:problem:${code}`,
    title: TITLES[code],
    status,
    detail,
    code,
  })
  throw new HTTPException(status, { res: new Response(body, { status, headers }) })
}

function keysUnavailable(c: Context): never {
  fail(c, 'service_unavailable', 'The token signing keys cannot be fetched yet')
}

function revocationsUnavailable(c: Context): never {
  fail(c, 'service_unavailable', 'The revocation feed has not been reachable for too long')
}

function unauthenticated(c: Context): never {
  const reason = unaccepted.get(c)
  if (reason === KEYS_UNAVAILABLE) keysUnavailable(c)
  if (reason === REVOCATIONS_UNAVAILABLE) revocationsUnavailable(c)
  if (reason !== undefined) {
    fail(c, 'unauthorized', reason, { error: 'invalid_token', description: reason })
  }
  fail(c, 'unauthorized', 'A bearer access token is required')
}

function compilePublicRoutes(
  routes: ReadonlyArray<PublicRoute>,
): (method: string, path: string) => boolean {
  const matchers = routes.map((route) => {
    const { method, path } = typeof route === 'string' ? { method: undefined, path: route } : route
    if (typeof path !== 'string' || !path.startsWith('/')) {
      throw new TypeError(`public route paths start with "/": ${String(path)}`)
    }
    const wanted = method?.toUpperCase()
    const prefix = path.endsWith('/*') ? path.slice(0, -1) : undefined
    return (m: string, p: string): boolean =>
      (wanted === undefined || wanted === m || (wanted === 'GET' && m === 'HEAD')) &&
      (prefix === undefined ? p === path : p.startsWith(prefix) && p.length > prefix.length)
  })
  return (method, path) => matchers.some((matches) => matches(method.toUpperCase(), path))
}

/**
 * Verifies the `Authorization: Bearer` token of every request and sets `c.get('auth')` to its
 * claims (undefined when the request is anonymous).
 *
 * - Protected routes (all but `publicRoutes`): no `Authorization` header answers 401 with
 *   `WWW-Authenticate: Bearer realm="..."` (no error parameter, RFC 6750 §3.1); a header that is
 *   not a bearer token, or a token the verifier refuses, answers 401 with `error="invalid_token"`.
 * - Public routes: a valid token sets `auth`; no token, or one that does not verify, leaves it
 *   undefined and the request goes on (a stale token must not lock anyone out of a public page).
 *   A later `requireAuth()` (or another guard) still answers `invalid_token` for that request.
 * - When the verifier's remote key set has never been fetched (`KeySetUnavailableError`), or it
 *   fails closed for want of a fresh revocation feed (`RevocationsUnavailableError`), protected
 *   routes answer 503 `service_unavailable` with `Retry-After`: the token may well be valid, and
 *   a 401 would make clients throw it away. Public routes go on anonymously (a guard further on
 *   answers the same 503).
 *
 * Other errors from the verifier propagate to the app's error handler.
 */
export function auth<E extends AuthEnv = AuthEnv>(options: AuthOptions): MiddlewareHandler<E> {
  const { verifier } = options
  if (typeof verifier?.verify !== 'function') throw new TypeError('auth() needs a verifier')
  const realm = options.realm ?? 'tessera'
  const isPublic = compilePublicRoutes(options.publicRoutes ?? [])
  return async function auth(c, next) {
    realms.set(c, realm)
    const open = isPublic(c.req.method, c.req.path)
    const header = c.req.header('authorization')
    let claims: AccessTokenClaims | undefined
    if (header !== undefined) {
      const token = BEARER.exec(header)?.[1]
      let rejected: string | undefined
      if (token === undefined) {
        rejected = 'The Authorization header is not a bearer token'
      } else {
        try {
          claims = await verifier.verify(token)
        } catch (error) {
          if (error instanceof TokenError) {
            rejected = REASON_DETAIL[error.reason] ?? 'The access token is invalid'
          } else if (error instanceof KeySetUnavailableError) {
            if (!open) keysUnavailable(c)
            unaccepted.set(c, KEYS_UNAVAILABLE)
          } else if (error instanceof RevocationsUnavailableError) {
            if (!open) revocationsUnavailable(c)
            unaccepted.set(c, REVOCATIONS_UNAVAILABLE)
          } else {
            throw error
          }
        }
      }
      if (rejected !== undefined) {
        if (!open)
          fail(c, 'unauthorized', rejected, { error: 'invalid_token', description: rejected })
        unaccepted.set(c, rejected)
      }
    } else if (!open) {
      fail(c, 'unauthorized', 'A bearer access token is required')
    }
    authContext(c).set('auth', claims)
    await next()
  }
}

/** Answers 401 unless `auth()` has set verified claims. */
export function requireAuth<E extends AuthEnv = AuthEnv>(): MiddlewareHandler<E> {
  return async function requireAuth(c, next) {
    if (authContext(c).get('auth') === undefined) unauthenticated(c)
    await next()
  }
}

/**
 * Answers 401 without a token and 403 `not_verified` when the token's `verified` claim is false
 * (the claim as it was when the token was issued).
 */
export function requireVerified<E extends AuthEnv = AuthEnv>(): MiddlewareHandler<E> {
  return async function requireVerified(c, next) {
    const claims = authContext(c).get('auth')
    if (claims === undefined) unauthenticated(c)
    if (claims.verified !== true) {
      const detail = 'This route needs a verified account'
      fail(c, 'not_verified', detail, { error: 'insufficient_scope', description: detail })
    }
    await next()
  }
}

/** Answers 401 without a token and 403 `forbidden` unless the token's `acct` is one of `types`. */
export function requireAccountType<E extends AuthEnv = AuthEnv>(
  ...types: [AccountType, ...AccountType[]]
): MiddlewareHandler<E> {
  if (types.length === 0) throw new TypeError('requireAccountType needs at least one account type')
  const allowed: ReadonlySet<string> = new Set(types)
  const detail = `This route is for ${types.join(' or ')} accounts`
  return async function requireAccountType(c, next) {
    const claims = authContext(c).get('auth')
    if (claims === undefined) unauthenticated(c)
    if (!allowed.has(claims.acct)) {
      fail(c, 'forbidden', detail, { error: 'insufficient_scope', description: detail })
    }
    await next()
  }
}

const SCOPE_NAME = /^[\x21\x23-\x5b\x5d-\x7e]+$/

/**
 * Answers 401 without a token and 403 `insufficient_scope` (RFC 6750 §3.1, naming the scopes
 * needed) unless the token's `scope` claim holds every one of `scopes`. A token without a
 * `scope` claim (one issued before Tessera had scopes) holds none.
 */
export function requireScope<E extends AuthEnv = AuthEnv>(
  ...scopes: [string, ...string[]]
): MiddlewareHandler<E> {
  if (scopes.length === 0) throw new TypeError('requireScope needs at least one scope')
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE_NAME.test(scope)) {
      throw new TypeError(`not a scope name: ${String(scope)}`)
    }
  }
  const needed = scopes.join(' ')
  const detail = `This route needs the scope ${needed}`
  return async function requireScope(c, next) {
    const claims = authContext(c).get('auth')
    if (claims === undefined) unauthenticated(c)
    const held = new Set((claims.scope ?? '').split(' '))
    if (!scopes.every((scope) => held.has(scope))) {
      fail(c, 'insufficient_scope', detail, {
        error: 'insufficient_scope',
        description: detail,
        scope: needed,
      })
    }
    await next()
  }
}

/**
 * Answers 401 without a token and 403 `mfa_step_up_required` unless the token's `amr` claim
 * (RFC 8176) holds `mfa`: its session passed a second factor (README, "Second factors"). A token
 * without `amr` (a session older than second factors, a personal or job token) has none. The
 * challenge names RFC 9470's `insufficient_user_authentication`: the client steps the session up
 * (`POST /v1/user/mfa/step-up`) or signs in again with its second factor, and retries.
 */
export function requireMfa<E extends AuthEnv = AuthEnv>(): MiddlewareHandler<E> {
  const detail = 'This route needs a session that passed a second factor'
  return async function requireMfa(c, next) {
    const claims = authContext(c).get('auth')
    if (claims === undefined) unauthenticated(c)
    if (claims.amr?.includes('mfa') !== true) {
      fail(c, 'mfa_step_up_required', detail, {
        error: 'insufficient_user_authentication',
        description: detail,
      })
    }
    await next()
  }
}
