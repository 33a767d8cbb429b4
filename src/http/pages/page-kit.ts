import type { Context, MiddlewareHandler } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import { csrf } from 'hono/csrf'
import { HTTPException } from 'hono/http-exception'
import * as v from 'valibot'
import { reauthenticate } from '../../accounts/reauthenticate.js'
import {
  BROWSER_SESSION_COOKIE,
  type BrowserSession,
  resolveBrowserSession,
  type StartedBrowserSession,
} from '../../browser/browser-sessions.js'
import {
  CSRF_COOKIE,
  looksLikeCsrfCookie,
  newCsrfCookieValue,
  sameToken,
  sessionFormToken,
} from '../../browser/csrf.js'
import { TesseraError } from '../../errors.js'
import { validate } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { pagePolicy } from './policy.js'

// What every page route shares: its headers, the browser session, form bodies and the two CSRF
// defences (README, "Pages").

const isHttps = (c: Context<AppEnv>) => c.get('tessera').config.issuer.startsWith('https://')

/** Pages get their own CSP (`pagePolicy`); the app's secure headers add the rest. */
export const pageHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next()
  c.res.headers.set('Content-Security-Policy', pagePolicy(c.get('tessera')))
}

/**
 * The sign-in and account pages: the same, but their CSP lets them run Tessera's passkey script
 * (README, "Passkeys").
 */
export const scriptPageHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next()
  c.res.headers.set('Content-Security-Policy', pagePolicy(c.get('tessera'), { script: true }))
}

/** Looks up the browser's session cookie: `c.get('browserSession')`, undefined when none. */
export const withBrowserSession: MiddlewareHandler<AppEnv> = async (c, next) => {
  const t = c.get('tessera')
  c.set('browserSession', await resolveBrowserSession(t, getCookie(c, BROWSER_SESSION_COOKIE)))
  await next()
}

const csrfRefused = () =>
  new TesseraError('csrf_failed', 'This form was not sent by a page of this server; reload it')

/**
 * The first CSRF defence, Hono's `csrf()`: a form post must come from Tessera's own origin
 * (`Origin` equal to TESSERA_ISSUER's, or `Sec-Fetch-Site: same-origin`). Hono answers a bare
 * 403; here it is `csrf_failed` like the token check.
 */
const sameOrigin = csrf({
  origin: (origin, c) => origin === new URL(c.get('tessera').config.issuer).origin,
})

export const sameOriginPost: MiddlewareHandler<AppEnv> = async (c, next) => {
  try {
    await sameOrigin(c, async () => {})
  } catch (error) {
    if (error instanceof HTTPException && error.status === 403) throw csrfRefused()
    throw error
  }
  await next()
}

/** The pages' form bodies: `application/x-www-form-urlencoded` only (what their forms send). */
export async function readForm<S extends v.GenericSchema>(
  c: Context<AppEnv>,
  schema: S,
): Promise<v.InferOutput<S>> {
  const type = c.req.header('content-type') ?? ''
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) {
    throw new TesseraError('unsupported_media_type', 'Send the form as a web form')
  }
  const body = Object.fromEntries(new URLSearchParams(await c.req.text()))
  return validate(schema, body)
}

/**
 * A query parameter that selects a fixed message (`?done=`, `?error=`): anything longer than a
 * key cannot be one and is ignored, not refused.
 */
export const queryKey = v.optional(
  v.pipe(
    v.string(),
    v.transform((s) => (s.length > 64 ? undefined : s)),
  ),
)

/** Every form's synchronizer token field. */
export const csrfField = v.optional(v.pipe(v.string(), v.maxLength(100)))

/** A signed-in browser's forms: the token derived from its session cookie (`sessionFormToken`). */
export function checkSessionToken(session: BrowserSession, presented: string | undefined): void {
  if (!sameToken(presented, sessionFormToken(session.secret))) throw csrfRefused()
}

/**
 * The sign-in and registration forms: the double-submit cookie's value, or a signed-in browser's
 * session token (the re-authentication step posts its provider buttons to the sign-in page).
 */
export function checkSignInToken(c: Context<AppEnv>, presented: string | undefined): void {
  const session = c.get('browserSession')
  if (session !== undefined && sameToken(presented, sessionFormToken(session.secret))) return
  const cookie = getCookie(c, CSRF_COOKIE)
  if (looksLikeCsrfCookie(cookie) && sameToken(presented, cookie)) return
  throw csrfRefused()
}

/**
 * The double-submit value for a sign-in or registration form: the browser's `tessera_csrf`
 * cookie, set now if it has none. HttpOnly (only the server reads it), SameSite=Lax, for the
 * browser's session (no Max-Age).
 */
export function signInFormToken(c: Context<AppEnv>): string {
  const present = getCookie(c, CSRF_COOKIE)
  if (looksLikeCsrfCookie(present)) return present
  const value = newCsrfCookieValue()
  setCookie(c, CSRF_COOKIE, value, {
    httpOnly: true,
    secure: isHttps(c),
    sameSite: 'Lax',
    path: '/',
  })
  return value
}

/**
 * The session cookie (README, "Pages"): HttpOnly, SameSite=Lax (a link from another site to the
 * account page arrives signed in; a cross-site form post does not), Path=/, Secure when the
 * issuer is https, Max-Age the session's absolute lifetime.
 */
export function setSessionCookie(c: Context<AppEnv>, session: StartedBrowserSession): void {
  setCookie(c, BROWSER_SESSION_COOKIE, session.secret, {
    httpOnly: true,
    secure: isHttps(c),
    sameSite: 'Lax',
    path: '/',
    maxAge: session.maxAge,
  })
}

export function clearSessionCookie(c: Context<AppEnv>): void {
  deleteCookie(c, BROWSER_SESSION_COOKIE, {
    httpOnly: true,
    secure: isHttps(c),
    sameSite: 'Lax',
    path: '/',
  })
}

/** The browser's session cookie as sent (its session is replaced by a sign-in). */
export function presentedSessionCookie(c: Context<AppEnv>): string | undefined {
  return getCookie(c, BROWSER_SESSION_COOKIE)
}

/** A short-lived HttpOnly cookie for one path (the pending federated sign-in). */
export function setPathCookie(
  c: Context<AppEnv>,
  cookie: { name: string; value: string },
  path: string,
  maxAge: number,
): void {
  setCookie(c, cookie.name, cookie.value, {
    httpOnly: true,
    secure: isHttps(c),
    sameSite: 'Lax',
    path,
    maxAge,
  })
}

export function clearPathCookie(c: Context<AppEnv>, name: string, path: string): void {
  deleteCookie(c, name, { httpOnly: true, secure: isHttps(c), sameSite: 'Lax', path })
}

/** Whether the client reads pages (a browser): then refusals are pages, otherwise problems. */
export function wantsHtml(c: Context<AppEnv>): boolean {
  return /\btext\/html\b/i.test(c.req.header('accept') ?? '')
}

/** After a form post (and for pages that move on at once): 303 See Other, a GET of `location`. */
export function seeOther(c: Context<AppEnv>, location: string): Response {
  return c.redirect(location, 303)
}

/** The refusal among `codes` a page shows in place of its form; anything else is thrown on. */
export const refusalOf = (error: unknown, codes: TesseraError['code'][]) =>
  error instanceof TesseraError && codes.includes(error.code) ? error : undefined

/**
 * The pages' password step-up (README, "Recent authentication"): re-proves the account on the
 * signed-in browser session. Answers the refusal to show with the form again (a wrong password,
 * the per-user budget), or undefined once the session is recent.
 */
export async function passwordStepUp(
  c: Context<AppEnv>,
  password: string,
): Promise<TesseraError | undefined> {
  const session = c.get('browserSession')!
  try {
    await reauthenticate(
      c.get('tessera'),
      { sub: session.user.id, sid: session.id },
      password,
      clientContext(c),
    )
    return undefined
  } catch (error) {
    const refusal = refusalOf(error, ['invalid_credentials', 'rate_limited'])
    if (refusal === undefined) throw error
    return refusal
  }
}
