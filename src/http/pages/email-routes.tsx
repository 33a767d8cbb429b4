import { type Context, Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import * as v from 'valibot'
import {
  cancelEmailChange,
  confirmEmailChange,
  requestEmailChange,
} from '../../accounts/email-change.js'
import {
  EMAIL_TOKEN_MAX_LENGTH,
  emailTokenPurpose,
  invalidEmailToken,
} from '../../accounts/email-tokens.js'
import { requestVerificationMail, verifyEmail } from '../../accounts/email-verification.js'
import type { TesseraError } from '../../errors.js'
import { emailField, loginEmailField, noControlCharacters, passwordField } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { type DoneKey, refusalNotice } from './messages.js'
import {
  checkSessionToken,
  checkSignInToken,
  clearPathCookie,
  csrfField,
  pageHeaders,
  readForm,
  refusalOf,
  sameOriginPost,
  seeOther,
  setPathCookie,
  signInFormToken,
  withBrowserSession,
} from './page-kit.js'
import { pageError, renderPage, renderRefusal } from './render.js'
import { type EmailTokenAction, EmailTokenPage } from './views/email.js'

/**
 * The mailed token, moved out of the link's query on arrival (README, "Email verification and
 * change"): HttpOnly, for its page's path only, 15 minutes.
 */
const TOKEN_COOKIE = 'tessera_email_token'
const TOKEN_COOKIE_MAX_AGE = 900

const codeField = v.optional(
  v.pipe(
    v.string(),
    v.trim(),
    noControlCharacters,
    v.maxLength(EMAIL_TOKEN_MAX_LENGTH, 'is too long'),
    v.transform((s) => (s === '' ? undefined : s)),
  ),
)
const TokenForm = v.object({ csrf: csrfField, code: codeField })
const ResendForm = v.object({ csrf: csrfField, email: loginEmailField })
const ChangeForm = v.object({
  csrf: csrfField,
  email: emailField,
  current_password: v.optional(passwordField),
})

/** A token page: its path, the actions its tokens may have, and the one a code defaults to. */
interface TokenPage {
  path: string
  actions: EmailTokenAction[]
  fallback: EmailTokenAction
}
const VERIFY_PAGE: TokenPage = { path: '/verify-email', actions: ['verify'], fallback: 'verify' }
const CHANGE_PAGE: TokenPage = {
  path: '/email-change',
  actions: ['change', 'cancel'],
  fallback: 'change',
}

const DONE: Record<EmailTokenAction, DoneKey> = {
  verify: 'email_verified',
  change: 'email_changed',
  cancel: 'email_change_cancelled',
}

const pageGet = [pageHeaders, withBrowserSession] as const
const pagePost = [pageHeaders, sameOriginPost, withBrowserSession] as const

function heldAction(page: TokenPage, token: string | undefined): EmailTokenAction | undefined {
  const purpose = token === undefined ? undefined : emailTokenPurpose(token)
  return purpose !== undefined && page.actions.includes(purpose) ? purpose : undefined
}

/** Where a page goes after a change: the account page if signed in, else the sign-in page. */
function done(c: Context<AppEnv>, key: DoneKey): Response {
  const signedIn = c.get('browserSession') !== undefined
  return seeOther(c, signedIn ? `/account?done=${key}#email` : `/login?done=${key}`)
}

function showTokenPage(c: Context<AppEnv>, page: TokenPage) {
  const query = c.req.query('token')
  if (query !== undefined) {
    // Out of the address bar (and the history) at once; only the form below spends it.
    if (heldAction(page, query) !== undefined) {
      setPathCookie(c, { name: TOKEN_COOKIE, value: query }, page.path, TOKEN_COOKIE_MAX_AGE)
    }
    return seeOther(c, page.path)
  }
  const action = heldAction(page, getCookie(c, TOKEN_COOKIE))
  return renderPage(
    c,
    <EmailTokenPage
      csrf={signInFormToken(c)}
      path={page.path}
      action={action}
      fallback={page.fallback}
    />,
  )
}

async function spendToken(c: Context<AppEnv>, page: TokenPage) {
  const t = c.get('tessera')
  const form = await readForm(c, TokenForm)
  checkSignInToken(c, form.csrf)
  const token = form.code ?? getCookie(c, TOKEN_COOKIE) ?? ''
  const action = heldAction(page, token)
  const client = clientContext(c)
  try {
    if (action === 'verify') await verifyEmail(t, token, client)
    else if (action === 'change') await confirmEmailChange(t, token, client)
    else if (action === 'cancel') await cancelEmailChange(t, token, client)
    else throw invalidEmailToken()
  } catch (error) {
    const refusal = refusalOf(error, ['invalid_email_token', 'email_taken'])
    if (refusal === undefined) throw error
    clearPathCookie(c, TOKEN_COOKIE, page.path)
    return refuseTokenPage(c, page, refusal)
  }
  clearPathCookie(c, TOKEN_COOKIE, page.path)
  return done(c, DONE[action])
}

function refuseTokenPage(c: Context<AppEnv>, page: TokenPage, refusal: TesseraError) {
  return renderRefusal(
    c,
    refusal,
    <EmailTokenPage
      csrf={signInFormToken(c)}
      path={page.path}
      action={undefined}
      fallback={page.fallback}
      notice={refusalNotice(refusal)}
    />,
  )
}

/** The verification and email-change pages (README, "Email verification and change"). */
export const emailPageRoutes = new Hono<AppEnv>()
  .get(VERIFY_PAGE.path, ...pageGet, (c) => showTokenPage(c, VERIFY_PAGE))
  .post(VERIFY_PAGE.path, ...pagePost, (c) => spendToken(c, VERIFY_PAGE))
  .get(CHANGE_PAGE.path, ...pageGet, (c) => showTokenPage(c, CHANGE_PAGE))
  .post(CHANGE_PAGE.path, ...pagePost, (c) => spendToken(c, CHANGE_PAGE))

  // "Send again", from the sign-in page's refusal, the check-your-mail page or the account page.
  .post('/verify-email/send', ...pagePost, async (c) => {
    const form = await readForm(c, ResendForm)
    checkSignInToken(c, form.csrf)
    await requestVerificationMail(c.get('tessera'), form.email, clientContext(c))
    return done(c, 'verification_sent')
  })

  // The account page's change form: a refusal comes back to the page with its fixed text.
  .post('/account/email', ...pagePost, async (c) => {
    const session = c.get('browserSession')
    if (session === undefined) return seeOther(c, '/login?return_to=%2Faccount')
    const form = await readForm(c, ChangeForm)
    checkSessionToken(session, form.csrf)
    try {
      await requestEmailChange(
        c.get('tessera'),
        { sub: session.user.id, sid: session.id },
        { email: form.email, currentPassword: form.current_password },
        clientContext(c),
      )
    } catch (error) {
      const refusal = refusalOf(error, [
        'invalid_credentials',
        'email_taken',
        'rate_limited',
        'reauthentication_required',
      ])
      if (refusal === undefined) throw error
      return seeOther(c, `/account?error=${refusal.code}#email`)
    }
    return seeOther(c, '/account?done=email_change_requested#email')
  })

  .onError(pageError)
