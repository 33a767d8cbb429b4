import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Context } from 'hono'
import { TesseraError } from '../../errors.js'
import type { AppEnv } from '../env.js'
import { problemResponse } from '../problem.js'

/** Readable from any origin: the same public answer for everyone. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/v1/keys', '/openapi.yaml'])
/** The routes that set the `tessera_device` cookie (README, "Passwords and login"). */
export const CREDENTIAL_PATHS: ReadonlySet<string> = new Set([
  '/v1/user/auth/login',
  '/api/v1/auth/login',
])
export const ALLOWED_METHODS = 'GET, POST, PATCH, DELETE'
/** Never X-Service-Secret: a service secret has no business in a browser. */
export const ALLOWED_HEADERS = 'Authorization, Content-Type'
export const EXPOSED_HEADERS = 'Retry-After, WWW-Authenticate, X-Request-Id'
/**
 * Seconds a browser may reuse a preflight answer: an origin removed from CORS_ORIGINS stops
 * being answered within this time.
 */
export const PREFLIGHT_MAX_AGE = 600

function isPreflight(method: string, origin: string | undefined, requested: string | undefined) {
  return method === 'OPTIONS' && origin !== undefined && requested !== undefined
}

/** What is left to do once the handler has answered (`corsBefore`). */
export type CorsFinish = (c: Context<AppEnv>) => void

/**
 * Cross-origin access for browser front-ends (README, "Browser front-ends on another origin"):
 *
 * - the public documents are readable from any origin, without credentials (`*`);
 * - every other path answers only the origins of CORS_ORIGINS, exactly as listed; a preflight from
 *   any other origin is refused with 403 `cors_origin_not_allowed`, and other requests go on
 *   without CORS headers (the browser then keeps the answer from the page);
 * - credentials (cookies) only on the password logins, which set the device cookie; every other
 *   route authenticates with a bearer token and needs none.
 *
 * Hono's `cors()` answers every preflight with 204 and sends credentials and exposed headers to
 * origins it refuses, so this is code of its own. It runs inside the app's one per-request
 * middleware (http/app.ts) rather than as a layer of its own: before the handler it returns the
 * answer to a preflight, or what to add to the handler's answer afterwards, or nothing (the common
 * case on Node: no CORS headers, and `Vary` already set).
 */
export function corsBefore(c: Context<AppEnv>): Response | CorsFinish | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
  // Node's parsed `headers` join a repeated Origin or Access-Control-Request-Method with ", ", as
  // a web `Headers` does, and the adapter has built them already (`requestHeader` would build
  // `headersDistinct` too).
  const origin = incoming !== undefined ? incoming.headers.origin : c.req.header('origin')
  const requested =
    incoming !== undefined
      ? incoming.headers['access-control-request-method']
      : c.req.header('access-control-request-method')
  const preflight = isPreflight(c.req.method, origin, requested as string | undefined)
  if (PUBLIC_PATHS.has(c.req.path)) {
    if (preflight) {
      return c.body(null, 204, {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Methods': 'GET',
        'Access-Control-Max-Age': String(PREFLIGHT_MAX_AGE),
      })
    }
    return publicFinish
  }

  const allowed = origin !== undefined && c.get('tessera').config.corsOrigins.includes(origin)
  const credentials = CREDENTIAL_PATHS.has(c.req.path)
  if (preflight) {
    if (!allowed) {
      const refused = problemResponse(
        new TesseraError(
          'cors_origin_not_allowed',
          'This origin is not allowed to call Tessera from a browser (CORS_ORIGINS)',
        ),
      )
      refused.headers.set('Vary', 'Origin')
      return refused
    }
    return c.body(null, 204, {
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Allow-Methods': ALLOWED_METHODS,
      'Access-Control-Allow-Headers': ALLOWED_HEADERS,
      'Access-Control-Max-Age': String(PREFLIGHT_MAX_AGE),
      ...(credentials ? { 'Access-Control-Allow-Credentials': 'true' } : {}),
      Vary: 'Origin',
    })
  }
  // Also without an Origin: a shared cache must not hand this answer to a cross-origin request
  // that would get other headers.
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing
  if (!allowed && outgoing !== undefined) {
    // On Node, before the answer, as the header block is (middleware/response-headers.ts):
    // changing `c.res.headers` afterwards turns every answer into a `Headers` object, a third
    // of a small request's cost (docs/performance.md, "/health"). A route that sends its own
    // Vary names Origin in it (routes/docs.ts), since its value replaces this one.
    outgoing.setHeader('Vary', 'Origin')
    return undefined
  }
  return (after) => {
    if (!/(^|,)\s*origin\s*(,|$)/i.test(after.res.headers.get('Vary') ?? '')) {
      after.res.headers.append('Vary', 'Origin')
    }
    if (!allowed) return
    after.res.headers.set('Access-Control-Allow-Origin', origin)
    after.res.headers.set('Access-Control-Expose-Headers', EXPOSED_HEADERS)
    if (credentials) after.res.headers.set('Access-Control-Allow-Credentials', 'true')
  }
}

const publicFinish: CorsFinish = (c) => {
  c.res.headers.set('Access-Control-Allow-Origin', '*')
  c.res.headers.set('Access-Control-Expose-Headers', EXPOSED_HEADERS)
}
