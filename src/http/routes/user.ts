import { Hono } from 'hono'
import * as v from 'valibot'
import {
  getLiveAccount,
  getUser,
  listIdentities,
  registerAccount,
  toUserView,
  updateDisplayName,
} from '../../accounts/accounts.js'
import { deleteOwnAccount } from '../../accounts/erasure.js'
import { loginWithPassword } from '../../accounts/login.js'
import { changePassword } from '../../accounts/password-change.js'
import { reauthenticate } from '../../accounts/reauthenticate.js'
import { serviceSecretMatches } from '../../accounts/service-secret.js'
import { requirePermission } from '../../clients/authenticate.js'
import { TesseraError } from '../../errors.js'
import { formatPasetoTime } from '../../paseto/time.js'
import { deleteSession, logout, logoutAll } from '../../sessions/logout.js'
import { rotateRefreshToken } from '../../sessions/refresh.js'
import { listSessions } from '../../sessions/sessions.js'
import { requestedGrant } from '../../tokens/grant.js'
import {
  displayNameField,
  emailField,
  grantFields,
  loginEmailField,
  passwordField,
  readJson,
  refreshTokenField,
  uuidParam,
} from '../body.js'
import { clientContext, deviceToken, setDeviceCookie } from '../client.js'
import { requestClient } from '../client-auth.js'
import type { AppEnv } from '../env.js'
import { requireUser, requireUserToken, sessionEnded } from '../middleware/require-user.js'
import { problemWithCookies } from '../problem.js'

const RegisterBody = v.object({
  email: emailField,
  password: passwordField,
  display_name: displayNameField,
})
const LoginBody = v.object({ email: loginEmailField, password: passwordField, ...grantFields })
const RefreshBody = v.object({ refresh_token: refreshTokenField })
const RefreshGrantBody = v.object({ refresh_token: refreshTokenField, ...grantFields })
const PatchMeBody = v.object({ display_name: v.exactOptional(displayNameField) })
const PasswordBody = v.object({ current_password: passwordField, new_password: passwordField })
const ReauthenticateBody = v.object({ password: passwordField })

/** `/v1/user/...`: accounts and sessions (openapi.yaml). Handlers adapt HTTP to the domain. */
export const userRoutes = new Hono<AppEnv>()
  .post('/auth/register', async (c) => {
    const t = c.get('tessera')
    const client = clientContext(c)
    await t.limits.registerPerIp.consume(client.ip ?? 'unknown')
    const body = await readJson(c, RegisterBody)
    const user = await registerAccount(
      t,
      { email: body.email, password: body.password, displayName: body.display_name },
      client,
    )
    return c.json(toUserView(user), 201)
  })

  .post('/auth/register-service', async (c) => {
    const t = c.get('tessera')
    // A service client with `register-service` (README, "Service clients"), or the shared secret.
    const client = await requestClient(c)
    if (client !== undefined) {
      requirePermission(client, 'register-service')
    } else {
      // Without a configured secret the route does not exist for anyone else (openapi.yaml).
      if (t.config.serviceSecret === undefined) throw new TesseraError('not_found')
      if (!serviceSecretMatches(t.config.serviceSecret, c.req.header('x-service-secret'))) {
        throw new TesseraError(
          'invalid_service_secret',
          'The X-Service-Secret header is missing or wrong',
        )
      }
    }
    const body = await readJson(c, RegisterBody)
    const user = await registerAccount(
      t,
      {
        email: body.email,
        password: body.password,
        displayName: body.display_name,
        accountType: 'service',
      },
      clientContext(c),
    )
    return c.json(toUserView(user), 201)
  })

  .post('/auth/login', async (c) => {
    const t = c.get('tessera')
    const body = await readJson(c, LoginBody)
    // Before the password is checked: an unknown audience costs no login attempt.
    const grant = requestedGrant(t.config, body)
    const login = await loginWithPassword(
      t,
      { email: body.email, password: body.password },
      clientContext(c),
      deviceToken(c),
      grant,
    )
    setDeviceCookie(c, login.deviceCookie)
    if ('mfaRequired' in login.outcome) return problemWithCookies(c, login.outcome.mfaRequired)
    return c.json(login.outcome.pair)
  })

  .post('/auth/refresh', async (c) => {
    const t = c.get('tessera')
    const body = await readJson(c, RefreshGrantBody)
    const grant = requestedGrant(t.config, body)
    const refreshed = await rotateRefreshToken(t, body.refresh_token, clientContext(c), grant)
    return c.json(refreshed.pair)
  })

  .post('/auth/logout', async (c) => {
    const t = c.get('tessera')
    const body = await readJson(c, RefreshBody)
    await logout(t, body.refresh_token, clientContext(c))
    return c.body(null, 204)
  })

  .post('/auth/logout-all', requireUser, async (c) => {
    await logoutAll(c.get('tessera'), c.get('claims').sub, clientContext(c))
    return c.body(null, 204)
  })

  // Refreshes the session's authentication time, which linking and unlinking require to be
  // recent (README, "Recent authentication").
  .post('/auth/reauthenticate', requireUser, async (c) => {
    const body = await readJson(c, ReauthenticateBody)
    await reauthenticate(c.get('tessera'), c.get('claims'), body.password, clientContext(c))
    return c.body(null, 204)
  })

  .get('/me', requireUserToken, async (c) => {
    const claims = c.get('claims')
    // The session check, the user and the identities in one statement (docs/performance.md).
    const account = await getLiveAccount(c.get('tessera'), claims.sid, claims.sub)
    if (account === undefined) throw sessionEnded()
    const { user, identities } = account
    return c.json({
      ...toUserView(user),
      identities: identities.map((i) => ({
        provider: i.provider,
        email: i.email,
        created_at: formatPasetoTime(i.created_at),
      })),
    })
  })

  .patch('/me', requireUser, async (c) => {
    const t = c.get('tessera')
    const body = await readJson(c, PatchMeBody)
    const userId = c.get('claims').sub
    const user =
      body.display_name === undefined
        ? await getUser(t.db, userId)
        : await updateDisplayName(t, userId, body.display_name)
    return c.json(toUserView(user))
  })

  // Erasure (README, "Deleting an account"): needs a recent authentication.
  .delete('/me', requireUser, async (c) => {
    await deleteOwnAccount(c.get('tessera'), c.get('claims'))
    return c.body(null, 204)
  })

  .post('/password', requireUser, async (c) => {
    const body = await readJson(c, PasswordBody)
    await changePassword(
      c.get('tessera'),
      c.get('claims'),
      { current: body.current_password, next: body.new_password },
      clientContext(c),
    )
    return c.body(null, 204)
  })

  .get('/sessions', requireUser, async (c) => {
    const t = c.get('tessera')
    const claims = c.get('claims')
    const sessions = await listSessions(t, claims.sub)
    // Shown with the sessions: a linked identity is a way in that outlives every session.
    const identities = await listIdentities(t.db, claims.sub)
    return c.json({
      sessions: sessions.map((s) => ({
        id: s.id,
        kind: s.kind,
        created_at: formatPasetoTime(s.created_at),
        last_used_at: formatPasetoTime(s.last_used_at),
        expires_at: formatPasetoTime(s.expires_at),
        user_agent: s.user_agent,
        ip: s.ip,
        current: s.id === claims.sid,
      })),
      identities: identities.map((i) => ({
        provider: i.provider,
        email: i.email,
        linked_at: formatPasetoTime(i.created_at),
      })),
    })
  })

  .delete('/sessions/:id', requireUser, async (c) => {
    const sessionId = uuidParam(c.req.param('id'), 'live session')
    await deleteSession(c.get('tessera'), c.get('claims').sub, sessionId, clientContext(c))
    return c.body(null, 204)
  })
