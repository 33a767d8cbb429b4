import { type Context, Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import * as v from 'valibot'
import { requestPasswordReset, resetPassword } from '../../accounts/password-reset.js'
import { TesseraError } from '../../errors.js'
import { addressBucket } from '../../rate-limit/address-bucket.js'
import { emailField, passwordField, resetTokenField, validate } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { type Notice, queryNotice, refusalNotice } from './messages.js'
import {
  checkSignInToken,
  clearPathCookie,
  clearSessionCookie,
  csrfField,
  pageHeaders,
  queryKey,
  readForm,
  refusalOf,
  sameOriginPost,
  seeOther,
  setPathCookie,
  signInFormToken,
  withBrowserSession,
} from './page-kit.js'
import { pageError, renderPage, renderRefusal } from './render.js'
import {
  ForgotPasswordPage,
  ResetLinkMissingPage,
  ResetPasswordPage,
} from './views/password-reset.js'

/**
 * The reset link's token, moved out of the URL by the first request (README, "Password reset"):
 * HttpOnly, for the reset page's path only, as long as a token lives.
 */
const RESET_COOKIE = 'tessera_reset'
const RESET_PATH = '/reset-password'
const RESET_COOKIE_SECONDS = 30 * 60

const ForgotQuery = v.object({ done: queryKey, error: queryKey })
const ForgotForm = v.object({ csrf: csrfField, email: v.pipe(v.string(), v.maxLength(1024)) })
const ResetForm = v.object({ csrf: csrfField, new_password: passwordField })

const pageGet = [pageHeaders, withBrowserSession] as const
const pagePost = [pageHeaders, sameOriginPost, withBrowserSession] as const

function forgotPage(c: Context<AppEnv>, extra: { email?: string; notice?: Notice | undefined }) {
  return <ForgotPasswordPage csrf={signInFormToken(c)} email={extra.email} notice={extra.notice} />
}

function resetPage(c: Context<AppEnv>, notice?: Notice) {
  const minLength = c.get('tessera').config.passwordMinLength
  return (
    <ResetPasswordPage csrf={signInFormToken(c)} passwordMinLength={minLength} notice={notice} />
  )
}

const invalidLink = () =>
  new TesseraError('invalid_reset_token', 'This reset link is unknown, expired or already used')

/** The token of the reset cookie, if it has the shape of one. */
function presentedToken(c: Context<AppEnv>): string | undefined {
  const value = getCookie(c, RESET_COOKIE)
  return value !== undefined && v.is(resetTokenField, value) ? value : undefined
}

/** `/forgot-password` and `/reset-password` (README, "Pages" and "Password reset"). */
export const passwordResetPages = new Hono<AppEnv>()
  .get('/forgot-password', ...pageGet, async (c) => {
    const query = validate(ForgotQuery, c.req.query())
    return renderPage(c, forgotPage(c, { notice: queryNotice(query) }))
  })

  .post('/forgot-password', ...pagePost, async (c) => {
    const t = c.get('tessera')
    const client = clientContext(c)
    const form = await readForm(c, ForgotForm)
    checkSignInToken(c, form.csrf)
    try {
      await t.limits.passwordResetPerIp.consume(addressBucket(client.ip))
      const email = validate(v.object({ email: emailField }), { email: form.email }).email
      await requestPasswordReset(t, email, client)
    } catch (error) {
      const refusal = refusalOf(error, ['rate_limited', 'validation_failed'])
      if (refusal === undefined) throw error
      const page = forgotPage(c, { email: form.email, notice: refusalNotice(refusal) })
      return renderRefusal(c, refusal, page)
    }
    return seeOther(c, '/forgot-password?done=reset_mail_sent')
  })

  // The link from the mail: the token goes into a cookie for this path and the browser moves on
  // to the same page without it, so it stays in no history, bookmark or Referer, and the request
  // log (which never records query strings) saw the path only.
  .get(RESET_PATH, ...pageGet, async (c) => {
    const token = c.req.query('token')
    if (token !== undefined) {
      if (!v.is(resetTokenField, token)) throw invalidLink()
      setPathCookie(c, { name: RESET_COOKIE, value: token }, RESET_PATH, RESET_COOKIE_SECONDS)
      return seeOther(c, RESET_PATH)
    }
    if (presentedToken(c) === undefined) {
      const refusal = invalidLink()
      return renderRefusal(c, refusal, <ResetLinkMissingPage notice={refusalNotice(refusal)} />)
    }
    return renderPage(c, resetPage(c))
  })

  .post(RESET_PATH, ...pagePost, async (c) => {
    const t = c.get('tessera')
    const form = await readForm(c, ResetForm)
    checkSignInToken(c, form.csrf)
    const token = presentedToken(c)
    try {
      if (token === undefined) throw invalidLink()
      await resetPassword(t, token, form.new_password, clientContext(c))
    } catch (error) {
      const refusal = refusalOf(error, ['weak_password', 'rate_limited', 'invalid_reset_token'])
      if (refusal === undefined) throw error
      if (refusal.code !== 'invalid_reset_token')
        return renderRefusal(c, refusal, resetPage(c, refusalNotice(refusal)))
      clearPathCookie(c, RESET_COOKIE, RESET_PATH)
      return renderRefusal(c, refusal, <ResetLinkMissingPage notice={refusalNotice(refusal)} />)
    }
    clearPathCookie(c, RESET_COOKIE, RESET_PATH)
    // The reset ended every session, this browser's too.
    clearSessionCookie(c)
    return seeOther(c, '/login?done=password_reset')
  })

  .onError(pageError)
