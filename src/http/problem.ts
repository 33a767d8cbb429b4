import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { TesseraError } from '../errors.js'
import type { AppEnv } from './env.js'

/** RFC 9457 problem details, with the stable `code` of API.md. */
export function problemResponse(error: TesseraError): Response {
  const body = {
    type: `urn:tessera:problem:${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.detail,
    code: error.code,
    ...(error.errors === undefined ? {} : { errors: error.errors }),
  }
  const headers = new Headers({
    'Content-Type': 'application/problem+json',
    'Cache-Control': 'no-store',
  })
  if (error.retryAfter !== undefined) headers.set('Retry-After', String(error.retryAfter))
  if (error.status === 401) {
    const description = error.detail.replace(/["\\]/g, '')
    headers.set(
      'WWW-Authenticate',
      error.maxAge !== undefined
        ? // Step-up (README, "Recent authentication"): the token is fine, the login behind it is too old.
          `Bearer realm="tessera", error="insufficient_user_authentication", error_description="${description}", max_age=${error.maxAge}`
        : error.invalidToken
          ? `Bearer realm="tessera", error="invalid_token", error_description="${description}"`
          : 'Bearer realm="tessera"',
    )
  }
  return new Response(JSON.stringify(body), { status: error.status, headers })
}

/** The app's one error handler: domain errors as they are, anything else as a bare 500. */
export function handleError(error: Error, c: Context<AppEnv>): Response {
  if (error instanceof TesseraError) return problemResponse(error)
  if (error instanceof HTTPException) {
    if (error.status === 413) return problemResponse(new TesseraError('payload_too_large', 'Request bodies are limited to 64 KiB'))
    if (error.status === 404) return problemResponse(new TesseraError('not_found'))
    if (error.status < 500) return problemResponse(new TesseraError('validation_failed', error.message))
  }
  // The cause is logged with the request id; the client learns nothing about internals.
  c.get('tessera')?.logger.error({ err: error, requestId: c.get('requestId') }, 'unhandled error')
  return problemResponse(new TesseraError('internal_error', 'Something went wrong; the request id is in X-Request-Id'))
}
