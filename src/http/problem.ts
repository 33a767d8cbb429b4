import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { databaseErrorCode, isDatabaseUnavailable } from '../db/errors.js'
import { TesseraError } from '../errors.js'
import type { Tessera } from '../tessera.js'
import type { AppEnv } from './env.js'

/** Retry-After, seconds, while the database cannot be reached (README "Database outages"). */
export const DATABASE_RETRY_AFTER_SECONDS = 5
/** During an outage every request fails alike: one warn line per this period, not one a request. */
const OUTAGE_LOG_PERIOD_MS = 10_000

const outageLog = new WeakMap<Tessera, { loggedAt: number; suppressed: number }>()

/**
 * Logs a "database unavailable" failure at warn, with its code and message but no stack (the
 * stack says nothing the code does not), at most once per OUTAGE_LOG_PERIOD_MS per instance with
 * the number of failures left unlogged in between.
 */
export function reportDatabaseUnavailable(
  tessera: Tessera,
  error: unknown,
  requestId: string | undefined,
): void {
  const now = tessera.clock()
  const state = outageLog.get(tessera)
  if (state !== undefined && now - state.loggedAt < OUTAGE_LOG_PERIOD_MS) {
    state.suppressed++
    return
  }
  const suppressed = state?.suppressed ?? 0
  outageLog.set(tessera, { loggedAt: now, suppressed: 0 })
  tessera.logger.warn(
    {
      code: databaseErrorCode(error),
      message: error instanceof Error ? error.message : String(error),
      requestId,
      suppressed,
    },
    'database unavailable: answering 503',
  )
}

export function databaseUnavailableError(cause: unknown): TesseraError {
  return new TesseraError(
    'service_unavailable',
    'The database is not reachable; try again shortly',
    {
      cause,
      retryAfter: DATABASE_RETRY_AFTER_SECONDS,
    },
  )
}

/** The RFC 9457 problem document of an error, with the stable `code` of openapi.yaml. */
export function problemBody(error: TesseraError) {
  return {
    type: `urn:tessera:problem:${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.detail,
    code: error.code,
    ...(error.errors === undefined ? {} : { errors: error.errors }),
    ...(error.mfa === undefined ? {} : error.mfa),
  }
}

/** RFC 9457 problem details, with the stable `code` of openapi.yaml. */
export function problemResponse(error: TesseraError): Response {
  const body = problemBody(error)
  const headers = problemHeaders(error)
  headers.set('Content-Type', 'application/problem+json')
  return new Response(JSON.stringify(body), { status: error.status, headers })
}

/**
 * `problemResponse` answered through the context, so the cookies a handler set before refusing
 * are kept: a password login answering `mfa_required` still renews the device cookie.
 */
export function problemWithCookies(c: Context<AppEnv>, error: TesseraError): Response {
  const headers = problemHeaders(error)
  headers.set('Content-Type', 'application/problem+json')
  for (const [name, value] of headers) c.header(name, value)
  return c.body(JSON.stringify(problemBody(error)), error.status as 401)
}

/**
 * The headers every refusal carries whatever its body (a problem document, or a page that shows
 * the refusal): `Cache-Control: no-store`, `Retry-After` for a rate limit, `WWW-Authenticate` on
 * 401.
 */
export function problemHeaders(error: TesseraError): Headers {
  const headers = new Headers({ 'Cache-Control': 'no-store' })
  if (error.retryAfter !== undefined) headers.set('Retry-After', String(error.retryAfter))
  if (error.status === 401) {
    const description = error.detail.replace(/["\\]/g, '')
    headers.set(
      'WWW-Authenticate',
      error.code === 'invalid_client_credentials'
        ? // Service clients authenticate with HTTP Basic (RFC 6749 §5.2 `invalid_client`).
          'Basic realm="tessera"'
        : error.maxAge !== undefined
          ? // Step-up (README, "Recent authentication"): the token is fine, its login is too old.
            `Bearer realm="tessera", error="insufficient_user_authentication", ` +
            `error_description="${description}", max_age=${error.maxAge}`
          : error.invalidToken
            ? `Bearer realm="tessera", error="invalid_token", error_description="${description}"`
            : 'Bearer realm="tessera"',
    )
  }
  return headers
}

/**
 * The app's one error handler: domain errors as they are, a database that cannot be reached as
 * 503 with Retry-After, anything else as a bare 500.
 */
export function handleError(error: Error, c: Context<AppEnv>): Response {
  return problemResponse(asTesseraError(error, c))
}

/**
 * What an error is to the client (`handleError`; the pages show the same as a page): domain
 * errors as they are, Hono's own refusals by their status, a database that cannot be reached as
 * 503, anything else as a 500 whose cause is logged with the request id.
 */
export function asTesseraError(error: Error, c: Context<AppEnv>): TesseraError {
  if (error instanceof TesseraError) return error
  if (error instanceof HTTPException) {
    if (error.status === 413)
      return new TesseraError('payload_too_large', 'Request bodies are limited to 64 KiB')
    if (error.status === 404) return new TesseraError('not_found')
    if (error.status < 500) return new TesseraError('validation_failed', error.message)
  }
  const tessera = c.get('tessera')
  if (tessera !== undefined && isDatabaseUnavailable(error)) {
    reportDatabaseUnavailable(tessera, error, c.get('requestId'))
    return databaseUnavailableError(error)
  }
  // The cause is logged with the request id; the client learns nothing about internals.
  c.get('tessera')?.logger.error({ err: error, requestId: c.get('requestId') }, 'unhandled error')
  return new TesseraError(
    'internal_error',
    'Something went wrong; the request id is in X-Request-Id',
  )
}
