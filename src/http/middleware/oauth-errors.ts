import type { MiddlewareHandler } from 'hono'
import type { ErrorCode } from '../../errors.js'

/**
 * The OAuth 2 endpoints (`/v1/oauth/*`) answer errors as RFC 6749 §5.2 requires, `{"error":
 * ...}` in `application/json`, and as Tessera does everywhere else, an RFC 9457 problem with a
 * stable `code`: one JSON object carrying both sets of members. Not `application/problem+json`:
 * OAuth clients (oauth4webapi among them, which the CLI uses) read an error body only from
 * `application/json` (README, "Device login"). Every problem these paths produce passes through
 * here, from the routes, the body limit, the not-found and the error handler alike.
 */
export const oauthErrorBodies: MiddlewareHandler = async (c, next) => {
  await next()
  if (c.res.headers.get('content-type') !== 'application/problem+json') return
  const problem = (await c.res.clone().json()) as { code: ErrorCode; detail: string }
  const body = {
    ...problem,
    error: oauthError(problem.code, c.res.status),
    error_description: oauthText(problem.detail),
  }
  // Hono keeps the previous response's other headers (Cache-Control, Retry-After, ...).
  c.res = new Response(JSON.stringify(body), {
    status: c.res.status,
    headers: { 'Content-Type': 'application/json' },
  })
}

/** The codes that are OAuth errors under the same name (RFC 6749 §5.2, RFC 8628 §3.5). */
const SAME_NAME: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'authorization_pending',
  'slow_down',
  'access_denied',
  'expired_token',
  'invalid_grant',
  'invalid_client',
  'unsupported_grant_type',
  'invalid_target',
  'invalid_scope',
])

/**
 * The RFC 6749 `error` for a Tessera code: malformed requests are `invalid_request`, a disabled
 * account `access_denied`, and a rate limit or an unreachable database `temporarily_unavailable`
 * (RFC 6749 §4.1.2.1's code for "try again later"; the token endpoint's list has none).
 */
function oauthError(code: ErrorCode, status: number): string {
  if (SAME_NAME.has(code)) return code
  if (code === 'account_disabled') return 'access_denied'
  if (code === 'invalid_client_credentials') return 'invalid_client'
  if (code === 'invalid_target') return 'invalid_target'
  if (code === 'rate_limited' || code === 'service_unavailable') return 'temporarily_unavailable'
  return status >= 500 ? 'server_error' : 'invalid_request'
}

/** `error_description` may hold printable ASCII but `"` and `\` (RFC 6749 §5.2). */
function oauthText(detail: string): string {
  return detail.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, ' ')
}
