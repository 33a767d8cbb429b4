import { type Context, Hono, type MiddlewareHandler } from 'hono'
import * as v from 'valibot'
import { listIdentities } from '../../accounts/accounts.js'
import type { BrowserSession } from '../../browser/browser-sessions.js'
import { sessionFormToken } from '../../browser/csrf.js'
import {
  approveUserCode,
  type DeviceRequest,
  denyUserCode,
  describeUserCode,
} from '../../device/verification.js'
import type { TesseraError } from '../../errors.js'
import { canLogInWith, isProviderName, PROVIDERS } from '../../federation/provider-table.js'
import { passwordField, validate } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { describeDevice, formatWhen } from './device.js'
import { queryNotice, refusalNotice } from './messages.js'
import {
  checkSessionToken,
  csrfField,
  pageHeaders,
  passwordStepUp,
  queryKey,
  readForm,
  refusalOf,
  sameOriginPost,
  seeOther,
  withBrowserSession,
} from './page-kit.js'
import { pageError, renderPage, renderRefusal } from './render.js'
import { DeviceCodePage, DeviceConfirmPage, DeviceReauthenticatePage } from './views/device.js'

/** Longer than any way of typing a code (`XXXX-XXXX`, spaces, lower case): not one. */
const MAX_USER_CODE = 32

const userCodeField = v.pipe(v.string(), v.maxLength(MAX_USER_CODE, 'is too long'))
const CodeForm = v.object({ csrf: csrfField, user_code: userCodeField })
const ReauthenticateForm = v.object({
  csrf: csrfField,
  user_code: userCodeField,
  password: passwordField,
})
const DeviceQuery = v.object({
  done: queryKey,
  error: queryKey,
  // verification_uri_complete's code only prefills the form; anything longer is ignored.
  user_code: v.optional(
    v.pipe(
      v.string(),
      v.transform((s) => (s.length > MAX_USER_CODE ? undefined : s)),
    ),
  ),
})

const session = (c: Context<AppEnv>): BrowserSession => c.get('browserSession')!
const csrfOf = (c: Context<AppEnv>) => sessionFormToken(session(c).secret)
const nameOf = (c: Context<AppEnv>) => session(c).user.display_name ?? session(c).user.email

/** Who decides: the browser session and its address (the device rate limits count both). */
const decider = (c: Context<AppEnv>) => ({
  userId: session(c).user.id,
  sessionId: session(c).id,
  ip: clientContext(c).ip,
})

/**
 * Not signed in: the sign-in page (any method), which comes back here with the code from the
 * device's link. Only `/device` itself needs this; its posts need the session too.
 */
const signedIn: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get('browserSession') !== undefined) return next()
  const code = c.req.method === 'GET' ? c.req.query('user_code') : undefined
  const back =
    code === undefined || code.length > MAX_USER_CODE
      ? '/device'
      : `/device?${new URLSearchParams({ user_code: code })}`
  return seeOther(c, `/login?${new URLSearchParams({ return_to: back })}`)
}

const pageGet = [pageHeaders, withBrowserSession, signedIn] as const
const pagePost = [pageHeaders, sameOriginPost, withBrowserSession, signedIn] as const

/** The refusals of a typed code: the uniform invalid message, or the entry rate limit. */
const CODE_REFUSALS: TesseraError['code'][] = ['invalid_user_code', 'rate_limited']

/** The code form again with the reason, at the refusal's status. */
function refuseCode(c: Context<AppEnv>, error: TesseraError, userCode: string) {
  return renderRefusal(
    c,
    error,
    <DeviceCodePage
      csrf={csrfOf(c)}
      name={nameOf(c)}
      userCode={userCode}
      notice={refusalNotice(error)}
    />,
  )
}

function confirmPage(c: Context<AppEnv>, userCode: string, request: DeviceRequest) {
  return renderPage(
    c,
    <DeviceConfirmPage
      csrf={csrfOf(c)}
      name={nameOf(c)}
      userCode={userCode}
      clientId={request.clientId}
      from={request.ip ?? 'unknown address'}
      device={describeDevice(request.userAgent)}
      askedAt={formatWhen(request.createdAt)}
      expiresAt={formatWhen(request.expiresAt)}
    />,
  )
}

async function reauthenticatePage(c: Context<AppEnv>, userCode: string, refusal?: TesseraError) {
  const t = c.get('tessera')
  const { user } = session(c)
  const identities = await listIdentities(t.db, user.id)
  const view = (
    <DeviceReauthenticatePage
      csrf={csrfOf(c)}
      name={nameOf(c)}
      userCode={userCode}
      hasPassword={user.password_hash !== null}
      signInWith={identities
        .filter((i) => canLogInWith(i.provider) && t.federation.get(i.provider) !== undefined)
        .map((i) => ({
          name: i.provider,
          label: isProviderName(i.provider) ? PROVIDERS[i.provider].label : i.provider,
        }))}
      notice={refusal === undefined ? undefined : refusalNotice(refusal)}
    />
  )
  return refusal === undefined ? renderPage(c, view) : renderRefusal(c, refusal, view)
}

/** Approves, or asks to sign in again when the session's authentication is not recent. */
async function approve(c: Context<AppEnv>, userCode: string) {
  try {
    await approveUserCode(c.get('tessera'), decider(c), userCode)
  } catch (error) {
    if (refusalOf(error, ['reauthentication_required']) !== undefined) {
      return reauthenticatePage(c, userCode)
    }
    const refusal = refusalOf(error, CODE_REFUSALS)
    if (refusal === undefined) throw error
    return refuseCode(c, refusal, userCode)
  }
  return seeOther(c, '/device?done=device_approved')
}

/**
 * `/device`, the verification page of the device login (README, "Pages" and "Device login"):
 * type the code, see who asks, approve or deny. Results are fixed `?done=` keys.
 */
export const deviceRoutes = new Hono<AppEnv>()
  .get('/device', ...pageGet, (c) => {
    const query = validate(DeviceQuery, c.req.query())
    return renderPage(
      c,
      <DeviceCodePage
        csrf={csrfOf(c)}
        name={nameOf(c)}
        userCode={query.done === undefined ? (query.user_code ?? '') : ''}
        notice={queryNotice(query)}
      />,
    )
  })

  .post('/device', ...pagePost, async (c) => {
    const form = await readForm(c, CodeForm)
    checkSessionToken(session(c), form.csrf)
    try {
      const request = await describeUserCode(c.get('tessera'), decider(c), form.user_code)
      return confirmPage(c, form.user_code, request)
    } catch (error) {
      const refusal = refusalOf(error, CODE_REFUSALS)
      if (refusal === undefined) throw error
      return refuseCode(c, refusal, form.user_code)
    }
  })

  .post('/device/approve', ...pagePost, async (c) => {
    const form = await readForm(c, CodeForm)
    checkSessionToken(session(c), form.csrf)
    return approve(c, form.user_code)
  })

  .post('/device/deny', ...pagePost, async (c) => {
    const form = await readForm(c, CodeForm)
    checkSessionToken(session(c), form.csrf)
    try {
      await denyUserCode(c.get('tessera'), decider(c), form.user_code)
    } catch (error) {
      const refusal = refusalOf(error, CODE_REFUSALS)
      if (refusal === undefined) throw error
      return refuseCode(c, refusal, form.user_code)
    }
    return seeOther(c, '/device?done=device_denied')
  })

  // The step-up's password form: re-proves the account on this session, then approves.
  .post('/device/reauthenticate', ...pagePost, async (c) => {
    const form = await readForm(c, ReauthenticateForm)
    checkSessionToken(session(c), form.csrf)
    const refusal = await passwordStepUp(c, form.password)
    if (refusal !== undefined) return reauthenticatePage(c, form.user_code, refusal)
    return approve(c, form.user_code)
  })

  .onError(pageError)
