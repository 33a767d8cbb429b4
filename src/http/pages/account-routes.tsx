import { type Context, Hono, type MiddlewareHandler } from 'hono'
import * as v from 'valibot'
import { listIdentities, updateDisplayName } from '../../accounts/accounts.js'
import { pendingEmailChange } from '../../accounts/email-change.js'
import { changePassword } from '../../accounts/password-change.js'
import { requireRecentAuthentication } from '../../accounts/reauthenticate.js'
import { type BrowserSession, endBrowserSession } from '../../browser/browser-sessions.js'
import { sessionFormToken } from '../../browser/csrf.js'
import { TesseraError } from '../../errors.js'
import { beginFlow, unlinkIdentity } from '../../federation/flow.js'
import { canLogInWith, isProviderName, PROVIDERS } from '../../federation/provider-table.js'
import {
  beginTotpEnrolment,
  finishTotpEnrolment,
  mfaStatus,
  newRecoveryCodes,
  removeTotp,
} from '../../mfa/manage.js'
import { listPasskeys } from '../../passkeys/passkeys.js'
import { registerPasskey, registrationOptions } from '../../passkeys/registration.js'
import { removePasskey } from '../../passkeys/removal.js'
import { deleteSession, logoutAll } from '../../sessions/logout.js'
import { listSessions, sessionAuthenticatedAt } from '../../sessions/sessions.js'
import { displayNameField, passwordField, validate } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { limitFlowPerIp, setBrowserBinding } from '../flow-browser.js'
import {
  challengeField,
  formResponseField,
  passkeyNameField,
  registrationResponseField,
} from '../passkey-fields.js'
import { optionsView } from '../routes/passkeys.js'
import { describeDevice, formatWhen } from './device.js'
import { errorMessage, type Notice, queryNotice, refusalNotice } from './messages.js'
import {
  checkSessionToken,
  clearSessionCookie,
  csrfField,
  passwordStepUp,
  queryKey,
  readForm,
  refusalOf,
  sameOriginPost,
  scriptPageHeaders,
  seeOther,
  withBrowserSession,
} from './page-kit.js'
import { pageError, renderPage, renderRefusal } from './render.js'
import {
  type AccountForm,
  AccountPage,
  type AccountView,
  ReauthenticatePage,
} from './views/account.js'
import type { ProviderButton } from './views/sign-in.js'
import { RecoveryCodesPage, TotpSetupPage } from './views/two-step.js'

const ProfileForm = v.object({ csrf: csrfField, display_name: v.optional(displayNameField) })
const PasswordForm = v.object({
  csrf: csrfField,
  current_password: passwordField,
  new_password: passwordField,
})
const SessionForm = v.object({
  csrf: csrfField,
  session: v.pipe(v.string(), v.maxLength(64, 'is too long')),
})
const providerField = v.pipe(v.string(), v.maxLength(32, 'is too long'))
const ProviderForm = v.object({ csrf: csrfField, provider: providerField })
const ReauthenticateForm = v.object({
  csrf: csrfField,
  password: passwordField,
  action: v.picklist(['link', 'unlink'], 'must be link or unlink'),
  provider: providerField,
})
const stepUpPassword = v.optional(v.union([v.literal(''), passwordField]))
const PasskeyOptionsForm = v.object({ csrf: csrfField, password: stepUpPassword })
const PasskeyForm = v.object({
  csrf: csrfField,
  name: passkeyNameField,
  challenge: challengeField,
  response: formResponseField(registrationResponseField),
})
const PasskeyRemoveForm = v.object({
  csrf: csrfField,
  passkey: v.pipe(v.string(), v.maxLength(64, 'is too long')),
  password: stepUpPassword,
})
const MfaStepUpForm = v.object({ csrf: csrfField, password: stepUpPassword })
const totpCodeField = v.pipe(v.string(), v.maxLength(16, 'is too long'))
const TotpConfirmForm = v.object({ csrf: csrfField, code: totpCodeField })
const TotpRemoveForm = v.object({
  csrf: csrfField,
  code: v.optional(totpCodeField),
  password: stepUpPassword,
})
const AccountQuery = v.object({
  done: queryKey,
  error: queryKey,
  linked: queryKey,
  continue: queryKey,
})

type Action = 'link' | 'unlink'

/** The refusals the two-step verification forms are shown again for (README, "Second factors"). */
const MFA_REFUSALS: TesseraError['code'][] = [
  'reauthentication_required',
  'invalid_credentials',
  'invalid_mfa_code',
  'mfa_already_enrolled',
  'mfa_not_enrolled',
  'rate_limited',
]

/** The refusals the passkey forms are shown again for (README, "Passkeys"). */
const PASSKEY_REFUSALS: TesseraError['code'][] = [
  'passkey_invalid',
  'challenge_expired',
  'passkey_limit_reached',
  'reauthentication_required',
  'rate_limited',
]

/**
 * The account page and its forms need a live browser session; without one, sign in first. A
 * link flow whose session ended meanwhile comes back with `?error=session_ended`: the sign-in
 * page shows it.
 */
const signedIn: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get('browserSession') !== undefined) return next()
  const error = c.req.method === 'GET' ? c.req.query('error') : undefined
  const query = new URLSearchParams({ return_to: '/account' })
  if (errorMessage(error) !== undefined) query.set('error', error!)
  return seeOther(c, `/login?${query}`)
}

// The account page runs the passkey script (README, "Passkeys"), so do the pages its forms answer.
const pageGet = [scriptPageHeaders, withBrowserSession, signedIn] as const
const pagePost = [scriptPageHeaders, sameOriginPost, withBrowserSession, signedIn] as const

const session = (c: Context<AppEnv>): BrowserSession => c.get('browserSession')!

const button = (name: string): ProviderButton => ({
  name,
  label: isProviderName(name) ? PROVIDERS[name].label : name,
})

/** The results and refusals a query names: `?done=`, `?error=`, `?linked=<provider>`. */
function accountNotice(query: v.InferOutput<typeof AccountQuery>): Notice | undefined {
  const linked = query.linked
  if (linked !== undefined && isProviderName(linked) && query.error === undefined) {
    const academic = PROVIDERS[linked].grantsAcademic
    const text = academic
      ? `${PROVIDERS[linked].label} is linked: your account is verified as academic.`
      : `${PROVIDERS[linked].label} is linked to your account.`
    return { kind: 'success', text }
  }
  return queryNotice(query)
}

/** `?continue=link:github`: the change a sign-in again was for, if it names one. */
function pendingAction(
  c: Context<AppEnv>,
  value: string | undefined,
): AccountView['pending'] | undefined {
  const match = /^(link|unlink):([a-z]+)$/.exec(value ?? '')
  if (match === null || !isProviderName(match[2]!)) return undefined
  if (c.get('tessera').federation.get(match[2]!) === undefined) return undefined
  return { action: match[1] as Action, provider: button(match[2]!) }
}

async function accountView(
  c: Context<AppEnv>,
  extra: Pick<AccountView, 'notice' | 'formNotice' | 'pending'> = {},
): Promise<AccountView> {
  const t = c.get('tessera')
  const { user, id } = session(c)
  const identities = await listIdentities(t.db, user.id)
  const linked = new Set(identities.map((i) => i.provider))
  const unlinked = t.federation.enabled().filter((name) => !linked.has(name))
  const verifiedAcademic = user.account_type === 'academic' && user.verified === 1
  const verifyWith = verifiedAcademic
    ? undefined
    : unlinked.find((name) => PROVIDERS[name].grantsAcademic)
  const sessions = await listSessions(t, user.id)
  const emailChange = await pendingEmailChange(t, user.id)
  const passkeys = await listPasskeys(t.db, user.id)
  const authenticatedAt = (await sessionAuthenticatedAt(t, id)) ?? 0
  const recent = t.clock() - authenticatedAt <= t.config.reauthMaxAge * 1000
  const mfa = await mfaStatus(t, user.id)
  const totp = await t.db
    .selectFrom('totp_credentials')
    .select('confirmed_at')
    .where('user_id', '=', user.id)
    .executeTakeFirst()
  return {
    csrf: sessionFormToken(session(c).secret),
    user: {
      email: user.email,
      displayName: user.display_name,
      accountType: user.account_type,
      verified: user.verified === 1,
      emailVerified: user.email_verified === 1,
      hasPassword: user.password_hash !== null,
    },
    emailChange:
      emailChange === undefined
        ? undefined
        : { email: emailChange.email, expiresAt: formatWhen(emailChange.expiresAt) },
    identities: identities.map((i) => ({
      provider: i.provider,
      label: button(i.provider).label,
      email: i.email,
      linkedAt: formatWhen(i.created_at),
    })),
    linkable: unlinked.filter((name) => name !== verifyWith).map(button),
    verifyWith: verifyWith === undefined ? undefined : button(verifyWith),
    passkeys: passkeys.map((p) => ({
      id: p.id,
      name: p.name,
      createdAt: formatWhen(p.created_at),
      lastUsed: p.last_used_at === null ? 'never' : formatWhen(p.last_used_at),
      synced: p.device_type === 'multiDevice',
    })),
    passkeyStepUp: recent ? undefined : user.password_hash !== null ? 'password' : 'sign-in-again',
    mfa: {
      totp: mfa.totp,
      since: totp?.confirmed_at == null ? undefined : formatWhen(totp.confirmed_at),
      recoveryCodesLeft: mfa.recovery_codes_left,
    },
    sessions: sessions.map((s) => ({
      id: s.id,
      device: describeDevice(s.user_agent),
      ip: s.ip,
      createdAt: formatWhen(s.created_at),
      lastUsedAt: formatWhen(s.last_used_at),
      current: s.id === id,
    })),
    ...extra,
  }
}

/** The account page again, showing why a form was refused, with the refusal's status. */
async function refuseOnAccountPage(c: Context<AppEnv>, error: TesseraError, form?: AccountForm) {
  const notice = refusalNotice(error)
  const view = await accountView(
    c,
    form === undefined ? { notice } : { formNotice: { form, notice } },
  )
  return renderRefusal(c, error, <AccountPage {...view} />)
}

/** The step-up page before a link or unlink (README, "Recent authentication"). */
async function reauthenticatePage(
  c: Context<AppEnv>,
  action: Action,
  provider: string,
  refusal?: TesseraError,
) {
  const t = c.get('tessera')
  const { user } = session(c)
  const identities = await listIdentities(t.db, user.id)
  const view = (
    <ReauthenticatePage
      csrf={sessionFormToken(session(c).secret)}
      name={user.display_name ?? user.email}
      action={action}
      provider={button(provider)}
      hasPassword={user.password_hash !== null}
      signInWith={identities
        .filter((i) => canLogInWith(i.provider) && t.federation.get(i.provider) !== undefined)
        .map((i) => button(i.provider))}
      notice={refusal === undefined ? undefined : refusalNotice(refusal)}
    />
  )
  return refusal === undefined ? renderPage(c, view) : renderRefusal(c, refusal, view)
}

/**
 * Starts a link flow for the signed-in browser: the provider's answer comes back to the account
 * page (`?linked=` or `?error=`), and the flow completes only while this session is live.
 */
async function startLink(c: Context<AppEnv>, providerName: string) {
  const t = c.get('tessera')
  await limitFlowPerIp(c, t.limits.oauthAuthorizePerIp, providerName)
  const provider = t.federation.get(providerName)
  if (provider === undefined) throw new TesseraError('not_found', 'No such provider is enabled')
  const { user, id } = session(c)
  const { url, browserCookie } = await beginFlow(t, {
    provider,
    redirectUri: `${t.config.issuer}/account`,
    link: { userId: user.id, sessionId: id },
    codeChallenge: undefined,
    codeChallengeMethod: undefined,
    clientState: undefined,
  })
  setBrowserBinding(c, browserCookie)
  return seeOther(c, url.toString())
}

async function unlink(c: Context<AppEnv>, provider: string) {
  const t = c.get('tessera')
  const { user, id } = session(c)
  try {
    await unlinkIdentity(t, { sub: user.id, sid: id }, provider, clientContext(c))
  } catch (error) {
    const refusal = refusalOf(error, ['last_login_method', 'not_found'])
    if (refusal === undefined) throw error
    return refuseOnAccountPage(c, refusal)
  }
  return seeOther(c, '/account?done=identity_unlinked#identities')
}

/** Link or unlink now if the session proved the account recently, else the step-up page. */
async function linkOrUnlink(c: Context<AppEnv>, action: Action, provider: string) {
  try {
    await requireRecentAuthentication(c.get('tessera'), session(c).id)
  } catch (error) {
    if (refusalOf(error, ['reauthentication_required']) === undefined) throw error
    return reauthenticatePage(c, action, provider)
  }
  return action === 'link' ? startLink(c, provider) : unlink(c, provider)
}

/** A password the form asked for (the session's authentication is not recent) re-proves it. */
async function stepUpIfGiven(c: Context<AppEnv>, password: string | undefined): Promise<void> {
  if (password === undefined || password === '') return
  const refusal = await passwordStepUp(c, password)
  if (refusal !== undefined) throw refusal
}

/** The ten recovery codes, this once; never cached (the pages' `no-store`). */
function recoveryCodesPage(c: Context<AppEnv>, codes: string[], reason: 'enrolled' | 'replaced') {
  const { user } = session(c)
  return renderPage(
    c,
    <RecoveryCodesPage
      csrf={sessionFormToken(session(c).secret)}
      name={user.display_name ?? user.email}
      codes={codes}
      reason={reason}
    />,
  )
}

/** `/account` and its forms (README, "Pages"). Every change answers 303 back to the page. */
export const accountRoutes = new Hono<AppEnv>()
  .get('/account', ...pageGet, async (c) => {
    const query = validate(AccountQuery, c.req.query())
    const view = await accountView(c, {
      notice: accountNotice(query),
      pending: pendingAction(c, query.continue),
    })
    return renderPage(c, <AccountPage {...view} />)
  })

  .post('/account/profile', ...pagePost, async (c) => {
    const form = await readForm(c, ProfileForm)
    checkSessionToken(session(c), form.csrf)
    await updateDisplayName(c.get('tessera'), session(c).user.id, form.display_name ?? null)
    return seeOther(c, '/account?done=profile_saved')
  })

  .post('/account/password', ...pagePost, async (c) => {
    const form = await readForm(c, PasswordForm)
    checkSessionToken(session(c), form.csrf)
    const { user, id } = session(c)
    try {
      await changePassword(
        c.get('tessera'),
        { sub: user.id, sid: id },
        { current: form.current_password, next: form.new_password },
        clientContext(c),
      )
    } catch (error) {
      const refusal = refusalOf(error, ['invalid_credentials', 'weak_password', 'rate_limited'])
      if (refusal === undefined) throw error
      return refuseOnAccountPage(c, refusal, 'password')
    }
    return seeOther(c, '/account?done=password_changed#password')
  })

  .post('/account/sessions/revoke', ...pagePost, async (c) => {
    const t = c.get('tessera')
    const form = await readForm(c, SessionForm)
    const current = session(c)
    checkSessionToken(current, form.csrf)
    if (form.session === current.id) {
      await endBrowserSession(t, current, clientContext(c))
      clearSessionCookie(c)
      return seeOther(c, '/login?done=signed_out')
    }
    try {
      if (!/^[0-9a-f-]{36}$/i.test(form.session))
        throw new TesseraError('not_found', 'No such live session')
      await deleteSession(t, current.user.id, form.session, clientContext(c))
    } catch (error) {
      const refusal = refusalOf(error, ['not_found'])
      if (refusal === undefined) throw error
      return refuseOnAccountPage(c, refusal)
    }
    return seeOther(c, '/account?done=session_revoked#sessions')
  })

  .post('/account/sign-out-everywhere', ...pagePost, async (c) => {
    const form = await readForm(c, v.object({ csrf: csrfField }))
    checkSessionToken(session(c), form.csrf)
    await logoutAll(c.get('tessera'), session(c).user.id, clientContext(c))
    clearSessionCookie(c)
    return seeOther(c, '/login?done=signed_out_everywhere')
  })

  .post('/account/link', ...pagePost, async (c) => {
    const form = await readForm(c, ProviderForm)
    checkSessionToken(session(c), form.csrf)
    if (c.get('tessera').federation.get(form.provider) === undefined)
      throw new TesseraError('not_found', 'No such provider is enabled')
    return linkOrUnlink(c, 'link', form.provider)
  })

  .post('/account/unlink', ...pagePost, async (c) => {
    const form = await readForm(c, ProviderForm)
    checkSessionToken(session(c), form.csrf)
    return linkOrUnlink(c, 'unlink', form.provider)
  })

  // The step-up's password form: re-proves the account on this session, then does the change.
  .post('/account/reauthenticate', ...pagePost, async (c) => {
    const form = await readForm(c, ReauthenticateForm)
    checkSessionToken(session(c), form.csrf)
    const refusal = await passwordStepUp(c, form.password)
    if (refusal !== undefined) return reauthenticatePage(c, form.action, form.provider, refusal)
    return form.action === 'link' ? startLink(c, form.provider) : unlink(c, form.provider)
  })

  // The passkey script's request for registration options (README, "Passkeys"): JSON, or a
  // problem document (the script shows its detail). A password given re-proves the account.
  .post('/account/passkeys/options', ...pagePost, async (c) => {
    const form = await readForm(c, PasskeyOptionsForm)
    checkSessionToken(session(c), form.csrf)
    if (form.password !== undefined && form.password !== '') {
      const refusal = await passwordStepUp(c, form.password)
      if (refusal !== undefined) throw refusal
    }
    const { user, id } = session(c)
    return c.json(
      optionsView(await registrationOptions(c.get('tessera'), { sub: user.id, sid: id })),
    )
  })

  .post('/account/passkeys', ...pagePost, async (c) => {
    const form = await readForm(c, PasskeyForm)
    checkSessionToken(session(c), form.csrf)
    const { user, id } = session(c)
    try {
      await registerPasskey(
        c.get('tessera'),
        { sub: user.id, sid: id },
        { name: form.name, challenge: form.challenge, response: form.response },
        clientContext(c),
      )
    } catch (error) {
      const refusal = refusalOf(error, PASSKEY_REFUSALS)
      if (refusal === undefined) throw error
      return refuseOnAccountPage(c, refusal, 'passkeys')
    }
    return seeOther(c, '/account?done=passkey_added#passkeys')
  })

  .post('/account/passkeys/remove', ...pagePost, async (c) => {
    const form = await readForm(c, PasskeyRemoveForm)
    checkSessionToken(session(c), form.csrf)
    const { user, id } = session(c)
    try {
      if (form.password !== undefined && form.password !== '') {
        const refusal = await passwordStepUp(c, form.password)
        if (refusal !== undefined) throw refusal
      }
      if (!/^[0-9a-f-]{36}$/i.test(form.passkey))
        throw new TesseraError('not_found', 'No such passkey')
      await removePasskey(
        c.get('tessera'),
        { sub: user.id, sid: id },
        form.passkey,
        clientContext(c),
      )
    } catch (error) {
      const refusal = refusalOf(error, [...PASSKEY_REFUSALS, 'not_found', 'invalid_credentials'])
      if (refusal === undefined) throw error
      return refuseOnAccountPage(c, refusal, 'passkeys')
    }
    return seeOther(c, '/account?done=passkey_removed#passkeys')
  })

  // Two-step verification (README, "Second factors"): pages and forms, no script. A password
  // given re-proves the account first, as the passkey forms do.
  .post('/account/mfa/totp', ...pagePost, async (c) => {
    const form = await readForm(c, MfaStepUpForm)
    checkSessionToken(session(c), form.csrf)
    const { user, id } = session(c)
    let enrolment: Awaited<ReturnType<typeof beginTotpEnrolment>>
    try {
      await stepUpIfGiven(c, form.password)
      enrolment = await beginTotpEnrolment(c.get('tessera'), { sub: user.id, sid: id })
    } catch (error) {
      const refusal = refusalOf(error, MFA_REFUSALS)
      if (refusal === undefined) throw error
      return refuseOnAccountPage(c, refusal, 'mfa')
    }
    // The SVG holds nothing but the otpauth URI, whose label otpauth escapes. The library is
    // loaded here, not at start (docs/performance.md, "Start-up").
    const { default: QRCode } = await import('qrcode')
    const qrSvg = await QRCode.toString(enrolment.otpauth_uri, { type: 'svg', margin: 2 })
    return renderPage(
      c,
      <TotpSetupPage
        csrf={sessionFormToken(session(c).secret)}
        name={user.display_name ?? user.email}
        enrolment={{ secret: enrolment.secret, qrSvg }}
      />,
    )
  })

  .post('/account/mfa/totp/confirm', ...pagePost, async (c) => {
    const form = await readForm(c, TotpConfirmForm)
    checkSessionToken(session(c), form.csrf)
    const { user, id } = session(c)
    let codes: string[]
    try {
      codes = await finishTotpEnrolment(
        c.get('tessera'),
        { sub: user.id, sid: id },
        form.code,
        clientContext(c),
      )
    } catch (error) {
      const refusal = refusalOf(error, MFA_REFUSALS)
      if (refusal === undefined) throw error
      if (refusal.code !== 'invalid_mfa_code' && refusal.code !== 'rate_limited')
        return refuseOnAccountPage(c, refusal, 'mfa')
      // The enrolment stays pending: the same code form again, with the reason.
      const page = (
        <TotpSetupPage
          csrf={sessionFormToken(session(c).secret)}
          name={user.display_name ?? user.email}
          notice={refusalNotice(refusal)}
        />
      )
      return renderRefusal(c, refusal, page)
    }
    return recoveryCodesPage(c, codes, 'enrolled')
  })

  .post('/account/mfa/recovery-codes', ...pagePost, async (c) => {
    const form = await readForm(c, MfaStepUpForm)
    checkSessionToken(session(c), form.csrf)
    const { user, id } = session(c)
    let codes: string[]
    try {
      await stepUpIfGiven(c, form.password)
      codes = await newRecoveryCodes(c.get('tessera'), { sub: user.id, sid: id }, clientContext(c))
    } catch (error) {
      const refusal = refusalOf(error, MFA_REFUSALS)
      if (refusal === undefined) throw error
      return refuseOnAccountPage(c, refusal, 'mfa')
    }
    return recoveryCodesPage(c, codes, 'replaced')
  })

  .post('/account/mfa/totp/remove', ...pagePost, async (c) => {
    const form = await readForm(c, TotpRemoveForm)
    checkSessionToken(session(c), form.csrf)
    const { user, id } = session(c)
    const code = form.code?.trim() === '' ? undefined : form.code
    try {
      await stepUpIfGiven(c, form.password)
      await removeTotp(c.get('tessera'), { sub: user.id, sid: id }, code, clientContext(c))
    } catch (error) {
      const refusal = refusalOf(error, MFA_REFUSALS)
      if (refusal === undefined) throw error
      return refuseOnAccountPage(c, refusal, 'mfa')
    }
    return seeOther(c, '/account?done=totp_removed#mfa')
  })

  .onError(pageError)
