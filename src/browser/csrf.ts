import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * The synchronizer tokens of the pages' forms (README, "Pages", CSRF). The Origin check comes
 * first; these are the second, independent defence, for browsers or proxies that drop `Origin`.
 *
 * - A signed-in browser's forms carry a token derived from its session cookie's secret: never
 *   stored, the same for the session's whole life, and unknown to anyone who cannot read the
 *   HttpOnly cookie.
 * - The sign-in and registration forms (no session yet, but login CSRF is still an attack: a
 *   victim signed in to the attacker's account) use a double-submit cookie, `tessera_csrf`: a
 *   random value in an HttpOnly cookie and the same value in the form.
 */
export const CSRF_COOKIE = 'tessera_csrf'
const CSRF_COOKIE_PATTERN = /^[A-Za-z0-9_-]{43}$/
/** Separates this use of the cookie's secret from any other derivation of it. */
const SESSION_TOKEN_LABEL = 'tessera page form token v1\u0000'

/** The form token of the browser session whose cookie holds `secret`. */
export function sessionFormToken(secret: string): string {
  return createHash('sha256')
    .update(SESSION_TOKEN_LABEL + secret, 'utf8')
    .digest('base64url')
}

/** A fresh value for the double-submit cookie. */
export function newCsrfCookieValue(): string {
  return randomBytes(32).toString('base64url')
}

export function looksLikeCsrfCookie(value: string | undefined): value is string {
  return value !== undefined && CSRF_COOKIE_PATTERN.test(value)
}

/** Constant-time equality of a presented token and the expected one. */
export function sameToken(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false
  const a = Buffer.from(presented, 'utf8')
  const b = Buffer.from(expected, 'utf8')
  return a.length === b.length && timingSafeEqual(a, b)
}
