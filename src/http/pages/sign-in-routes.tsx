import { type Context, Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import * as v from 'valibot'
import { registerAccount } from '../../accounts/accounts.js'
import { type BrowserSession, endBrowserSession } from '../../browser/browser-sessions.js'
import {
  beginPagesSignIn,
  COMPLETE_PATH,
  PENDING_TTL_SECONDS,
  pendingCookieName,
  readPendingSignIn,
} from '../../browser/federated-sign-in.js'
import {
  continueSignIn,
  type SignInRequest,
  type SignInTarget,
  signInRequestOf,
  signInTarget,
} from '../../browser/return-to.js'
import {
  registerAndSignIn,
  signInPagesWithLoginCode,
  signInPagesWithPasskey,
  signInPagesWithPassword,
  signInPagesWithSecondFactor,
} from '../../browser/sign-in.js'
import { TesseraError } from '../../errors.js'
import { PROVIDERS } from '../../federation/provider-table.js'
import { enrolledFactors, factorProof, mfaPasskeyOptions } from '../../mfa/factors.js'
import { readMfaTicket } from '../../mfa/tickets.js'
import { passkeySignInOptions } from '../../passkeys/authentication.js'
import type { Tessera } from '../../tessera.js'
import { displayNameField, emailField, loginEmailField, passwordField, validate } from '../body.js'
import { clientContext, deviceToken, setDeviceCookie } from '../client.js'
import type { AppEnv } from '../env.js'
import { limitFlowPerIp, setBrowserBinding } from '../flow-browser.js'
import {
  authenticationResponseField,
  challengeField,
  formResponseField,
} from '../passkey-fields.js'
import { webauthnProofField } from '../routes/mfa.js'
import { optionsView } from '../routes/passkeys.js'
import { errorMessage, type Notice, queryNotice, refusalNotice } from './messages.js'
import {
  checkSessionToken,
  checkSignInToken,
  clearPathCookie,
  clearSessionCookie,
  csrfField,
  pageHeaders,
  presentedSessionCookie,
  queryKey,
  readForm,
  sameOriginPost,
  scriptPageHeaders,
  seeOther,
  setPathCookie,
  setSessionCookie,
  signInFormToken,
  withBrowserSession,
} from './page-kit.js'
import { pageError, renderPage, renderRefusal } from './render.js'
import { CheckMailPage } from './views/email.js'
import { MfaStepPage } from './views/mfa.js'
import { type ProviderButton, RegisterPage, SignInPage } from './views/sign-in.js'

/** How an application names where a sign-in continues (README, "Pages", return_to rules). */
const requestFields = {
  return_to: v.optional(v.pipe(v.string(), v.maxLength(4096, 'is too long'))),
  state: v.optional(v.pipe(v.string(), v.maxLength(1024, 'is too long'))),
  code_challenge: v.optional(v.pipe(v.string(), v.maxLength(256, 'is too long'))),
  code_challenge_method: v.optional(v.pipe(v.string(), v.maxLength(16, 'is too long'))),
}
const SignInQuery = v.object({
  ...requestFields,
  done: queryKey,
  error: queryKey,
})
const SignInForm = v.object({
  ...requestFields,
  csrf: csrfField,
  email: loginEmailField,
  password: passwordField,
})
const RegisterForm = v.object({
  ...requestFields,
  csrf: csrfField,
  email: emailField,
  password: passwordField,
  display_name: v.optional(displayNameField),
})
const FederatedForm = v.object({
  ...requestFields,
  csrf: csrfField,
  provider: v.pipe(v.string(), v.maxLength(32, 'is too long')),
})
const TokenForm = v.object({ csrf: csrfField })
const PasskeySignInForm = v.object({
  ...requestFields,
  csrf: csrfField,
  challenge: challengeField,
  response: formResponseField(authenticationResponseField),
})

const MfaForm = v.object({
  ...requestFields,
  csrf: csrfField,
  mfa_ticket: v.pipe(v.string(), v.maxLength(128, 'is too long')),
  totp_code: v.optional(v.pipe(v.string(), v.maxLength(16, 'is too long'))),
  recovery_code: v.optional(v.pipe(v.string(), v.maxLength(32, 'is too long'))),
  // The passkey script's `{challenge, response}`, as JSON text.
  webauthn: v.optional(formResponseField(webauthnProofField)),
})
const MfaOptionsForm = v.object({
  csrf: csrfField,
  mfa_ticket: v.pipe(v.string(), v.maxLength(128, 'is too long')),
})

type RequestFields = { [K in keyof typeof requestFields]?: string | undefined }

function requestOf(fields: RequestFields): SignInRequest {
  return {
    returnTo: fields.return_to,
    state: fields.state,
    codeChallenge: fields.code_challenge,
    codeChallengeMethod: fields.code_challenge_method,
  }
}

const clientHost = (target: SignInTarget) =>
  target.kind === 'client' ? new URL(target.redirectUri).host : undefined

/** The enabled providers that can sign in (ORCID only links). */
export function signInProviders(t: Pick<Tessera, 'federation'>): ProviderButton[] {
  return t.federation
    .enabled()
    .filter((name) => t.federation.get(name)?.linkOnly === false)
    .map((name) => ({ name, label: PROVIDERS[name].label }))
}

/** The refusals a sign-in or registration form is shown again for, with the reason. */
const FORM_REFUSALS = new Set<TesseraError['code']>([
  'invalid_credentials',
  'account_disabled',
  'rate_limited',
  'weak_password',
  'email_taken',
  'email_not_verified',
  'passkey_invalid',
  'challenge_expired',
])

function formRefusal(error: unknown): TesseraError | undefined {
  return error instanceof TesseraError && FORM_REFUSALS.has(error.code) ? error : undefined
}

function signInPage(
  c: Context<AppEnv>,
  target: SignInTarget,
  extra: { email?: string; notice?: Notice | undefined; resendTo?: string | undefined },
) {
  const t = c.get('tessera')
  return (
    <SignInPage
      csrf={signInFormToken(c)}
      request={signInRequestOf(target)}
      clientHost={clientHost(target)}
      providers={signInProviders(t)}
      email={extra.email}
      notice={extra.notice}
      resendTo={extra.resendTo}
    />
  )
}

function registerPage(
  c: Context<AppEnv>,
  target: SignInTarget,
  extra: { email?: string; displayName?: string; notice?: Notice },
) {
  return (
    <RegisterPage
      csrf={signInFormToken(c)}
      request={signInRequestOf(target)}
      clientHost={clientHost(target)}
      passwordMinLength={c.get('tessera').config.passwordMinLength}
      email={extra.email}
      displayName={extra.displayName}
      notice={extra.notice}
    />
  )
}

function mfaStepPage(
  c: Context<AppEnv>,
  target: SignInTarget,
  ticket: string,
  factors: string[],
  notice: Notice | undefined,
) {
  return (
    <MfaStepPage
      csrf={signInFormToken(c)}
      request={signInRequestOf(target)}
      ticket={ticket}
      factors={factors}
      notice={notice}
    />
  )
}

/** `/login?error=<code>` continuing to the same target: how a failed flow comes back. */
function signInUrl(target: SignInTarget, error: string): string {
  const query = new URLSearchParams({ error })
  const request = signInRequestOf(target)
  if (request.returnTo !== undefined) query.set('return_to', request.returnTo)
  if (request.state !== undefined) query.set('state', request.state)
  if (request.codeChallenge !== undefined) query.set('code_challenge', request.codeChallenge)
  if (request.codeChallengeMethod !== undefined)
    query.set('code_challenge_method', request.codeChallengeMethod)
  return `/login?${query}`
}

/**
 * A browser already signed in moves on at once. For an application that mints a login code
 * without any credential being checked, so it counts against the per-address budget of starting
 * a federated flow (RATE_LIMIT_OAUTH_PER_IP), like every other way to obtain a code.
 */
async function continueSignedIn(c: Context<AppEnv>, session: BrowserSession, target: SignInTarget) {
  const t = c.get('tessera')
  if (target.kind === 'client') await limitFlowPerIp(c, t.limits.oauthAuthorizePerIp, null)
  return seeOther(c, await continueSignIn(t, session.user.id, 'session', target, session.amr))
}

const pageGet = [pageHeaders, withBrowserSession] as const
const pagePost = [pageHeaders, sameOriginPost, withBrowserSession] as const
// The sign-in page runs the passkey script (README, "Passkeys"): it and the pages its forms answer.
const signInGet = [scriptPageHeaders, withBrowserSession] as const
const signInPost = [scriptPageHeaders, sameOriginPost, withBrowserSession] as const

/**
 * Sign-in, registration and sign-out pages (README, "Pages"). A browser already signed in that
 * asks to sign in (for itself or for an application) continues at once, as single sign-on does.
 */
export const signInRoutes = new Hono<AppEnv>()
  .get('/login', ...signInGet, async (c) => {
    const t = c.get('tessera')
    const query = validate(SignInQuery, c.req.query())
    const target = signInTarget(t.config, requestOf(query))
    const session = c.get('browserSession')
    if (session !== undefined) return continueSignedIn(c, session, target)
    return renderPage(c, signInPage(c, target, { notice: queryNotice(query) }))
  })

  .post('/login', ...signInPost, async (c) => {
    const t = c.get('tessera')
    const form = await readForm(c, SignInForm)
    checkSignInToken(c, form.csrf)
    const target = signInTarget(t.config, requestOf(form))
    try {
      const signedIn = await signInPagesWithPassword(
        t,
        { email: form.email, password: form.password },
        clientContext(c),
        { deviceToken: deviceToken(c), previousSecret: presentedSessionCookie(c) },
      )
      setDeviceCookie(c, signedIn.deviceCookie)
      if (signedIn.session instanceof TesseraError) {
        const mfa = signedIn.session.mfa!
        return renderPage(c, mfaStepPage(c, target, mfa.mfa_ticket, mfa.factors, undefined))
      }
      setSessionCookie(c, signedIn.session)
      return seeOther(
        c,
        await continueSignIn(t, signedIn.user.id, 'password', target, signedIn.session.amr),
      )
    } catch (error) {
      const refusal = formRefusal(error)
      if (refusal === undefined) throw error
      const notice = refusalNotice(refusal)
      // Only someone who gave the right password learns this, and gets the "send again" form.
      const resendTo = refusal.code === 'email_not_verified' ? form.email : undefined
      const page = signInPage(c, target, { email: form.email, notice, resendTo })
      return renderRefusal(c, refusal, page)
    }
  })

  // The passkey script's request for sign-in options: JSON, or a problem document.
  .post('/login/passkey/options', ...signInPost, async (c) => {
    const form = await readForm(c, TokenForm)
    checkSignInToken(c, form.csrf)
    return c.json(optionsView(await passkeySignInOptions(c.get('tessera'), clientContext(c))))
  })

  .post('/login/passkey', ...signInPost, async (c) => {
    const t = c.get('tessera')
    const form = await readForm(c, PasskeySignInForm)
    checkSignInToken(c, form.csrf)
    const target = signInTarget(t.config, requestOf(form))
    try {
      const signedIn = await signInPagesWithPasskey(
        t,
        { challenge: form.challenge, response: form.response },
        clientContext(c),
        presentedSessionCookie(c),
      )
      setSessionCookie(c, signedIn.session)
      return seeOther(
        c,
        await continueSignIn(t, signedIn.user.id, 'session', target, signedIn.session.amr),
      )
    } catch (error) {
      const refusal = formRefusal(error)
      if (refusal === undefined) throw error
      const page = signInPage(c, target, { notice: refusalNotice(refusal) })
      return renderRefusal(c, refusal, page)
    }
  })

  // The passkey script's request for the MFA step's options: the ticket is read, not spent.
  .post('/login/mfa/passkey/options', ...signInPost, async (c) => {
    const t = c.get('tessera')
    const form = await readForm(c, MfaOptionsForm)
    checkSignInToken(c, form.csrf)
    const open = await readMfaTicket(t, form.mfa_ticket)
    return c.json(optionsView(await mfaPasskeyOptions(t, open.userId)))
  })

  // The second step of a sign-in with a second factor (README, "Second factors"). A wrong code
  // or passkey shows the step again with the same ticket, until it expires. The step page runs
  // the passkey script, so this answer has the script's CSP.
  .post('/login/mfa', ...signInPost, async (c) => {
    const t = c.get('tessera')
    const form = await readForm(c, MfaForm)
    checkSignInToken(c, form.csrf)
    const target = signInTarget(t.config, requestOf(form))
    try {
      const signedIn = await signInPagesWithSecondFactor(
        t,
        form.mfa_ticket,
        factorProof(form),
        clientContext(c),
        presentedSessionCookie(c),
      )
      setSessionCookie(c, signedIn.session)
      return seeOther(
        c,
        await continueSignIn(t, signedIn.user.id, 'password', target, signedIn.session.amr),
      )
    } catch (error) {
      if (!(error instanceof TesseraError)) throw error
      if (['invalid_mfa_ticket', 'invalid_credentials', 'account_disabled'].includes(error.code))
        return seeOther(c, signInUrl(target, error.code))
      const shownAgain = [
        'invalid_mfa_code',
        'rate_limited',
        'validation_failed',
        'passkey_invalid',
        'challenge_expired',
      ]
      if (!shownAgain.includes(error.code)) throw error
      const factors = await enrolledFactors(t.db, (await readMfaTicket(t, form.mfa_ticket)).userId)
      const page = mfaStepPage(c, target, form.mfa_ticket, factors, refusalNotice(error))
      return renderRefusal(c, error, page)
    }
  })

  .post('/login/federated', ...pagePost, async (c) => {
    const t = c.get('tessera')
    const form = await readForm(c, FederatedForm)
    checkSignInToken(c, form.csrf)
    const target = signInTarget(t.config, requestOf(form))
    await limitFlowPerIp(c, t.limits.oauthAuthorizePerIp, form.provider)
    const provider = t.federation.get(form.provider)
    if (provider === undefined || provider.linkOnly)
      throw new TesseraError('not_found', 'No such provider is enabled for sign-in')
    const begun = await beginPagesSignIn(t, provider, target)
    setBrowserBinding(c, begun.browserCookie)
    setPathCookie(c, begun.pending, COMPLETE_PATH, PENDING_TTL_SECONDS)
    return seeOther(c, begun.url.toString())
  })

  // The sign-in page's own redirect URI: the flow's login code, redeemed with the verifier the
  // pending cookie kept; a refusal goes back to the sign-in page with its code.
  .get(COMPLETE_PATH, ...signInGet, async (c) => {
    const t = c.get('tessera')
    await limitFlowPerIp(c, t.limits.oauthExchangePerIp, null)
    const name = pendingCookieName(c.req.query('state') ?? '')
    const pending = readPendingSignIn(t.config, getCookie(c, name))
    clearPathCookie(c, name, COMPLETE_PATH)
    if (pending === undefined) {
      throw new TesseraError(
        'invalid_oauth_state',
        'This sign-in attempt is unknown, expired or was started in another browser',
      )
    }
    const error = c.req.query('error')
    if (error !== undefined) {
      return seeOther(
        c,
        signInUrl(pending.target, errorMessage(error) === undefined ? 'provider_error' : error),
      )
    }
    try {
      const signedIn = await signInPagesWithLoginCode(
        t,
        c.req.query('code') ?? '',
        pending.verifier,
        clientContext(c),
        presentedSessionCookie(c),
      )
      if (signedIn.session instanceof TesseraError) {
        const mfa = signedIn.session.mfa!
        return renderPage(c, mfaStepPage(c, pending.target, mfa.mfa_ticket, mfa.factors, undefined))
      }
      setSessionCookie(c, signedIn.session)
      return seeOther(
        c,
        await continueSignIn(t, signedIn.user.id, 'session', pending.target, signedIn.session.amr),
      )
    } catch (error) {
      if (
        !(error instanceof TesseraError) ||
        !['invalid_login_code', 'account_disabled'].includes(error.code)
      )
        throw error
      return seeOther(c, signInUrl(pending.target, error.code))
    }
  })

  .get('/register', ...pageGet, async (c) => {
    const t = c.get('tessera')
    const target = signInTarget(t.config, requestOf(validate(SignInQuery, c.req.query())))
    const session = c.get('browserSession')
    if (session !== undefined) return continueSignedIn(c, session, target)
    return renderPage(c, registerPage(c, target, {}))
  })

  .post('/register', ...pagePost, async (c) => {
    const t = c.get('tessera')
    const client = clientContext(c)
    const form = await readForm(c, RegisterForm)
    checkSignInToken(c, form.csrf)
    const target = signInTarget(t.config, requestOf(form))
    try {
      await t.limits.registerPerIp.consume(client.ip ?? 'unknown')
      // REQUIRE_VERIFIED_EMAIL: the account exists, but signs in only once its address is proven.
      if (t.config.requireVerifiedEmail) {
        const input = { email: form.email, password: form.password }
        const user = await registerAccount(t, { ...input, displayName: form.display_name }, client)
        return renderPage(c, <CheckMailPage csrf={signInFormToken(c)} email={user.email} />, 201)
      }
      const registered = await registerAndSignIn(
        t,
        { email: form.email, password: form.password, displayName: form.display_name ?? null },
        client,
        presentedSessionCookie(c),
      )
      setSessionCookie(c, registered.session)
      return seeOther(
        c,
        await continueSignIn(t, registered.user.id, 'password', target, registered.session.amr),
      )
    } catch (error) {
      const refusal = formRefusal(error)
      if (refusal === undefined) throw error
      const page = registerPage(c, target, {
        email: form.email,
        displayName: form.display_name ?? '',
        notice: refusalNotice(refusal),
      })
      return renderRefusal(c, refusal, page)
    }
  })

  .post('/logout', ...pagePost, async (c) => {
    const session = c.get('browserSession')
    if (session !== undefined) {
      const form = await readForm(c, TokenForm)
      checkSessionToken(session, form.csrf)
      await endBrowserSession(c.get('tessera'), session, clientContext(c))
    }
    clearSessionCookie(c)
    return seeOther(c, '/login?done=signed_out')
  })

  .onError(pageError)
