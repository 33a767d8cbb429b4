import { Hono } from 'hono'
import * as v from 'valibot'
import {
  cancelEmailChange,
  confirmEmailChange,
  requestEmailChange,
} from '../../accounts/email-change.js'
import { EMAIL_TOKEN_MAX_LENGTH } from '../../accounts/email-tokens.js'
import { requestVerificationMail, verifyEmail } from '../../accounts/email-verification.js'
import { formatPasetoTime } from '../../paseto/time.js'
import {
  emailField,
  loginEmailField,
  noControlCharacters,
  passwordField,
  readJson,
} from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

const tokenField = v.pipe(
  v.string('must be a string'),
  v.trim(),
  noControlCharacters,
  v.nonEmpty('is required'),
  v.maxLength(EMAIL_TOKEN_MAX_LENGTH, `must be at most ${EMAIL_TOKEN_MAX_LENGTH} characters`),
)
const TokenBody = v.object({ token: tokenField })
const SendBody = v.object({ email: loginEmailField })
const ChangeBody = v.object({ email: emailField, current_password: v.optional(passwordField) })

/**
 * `/v1/user/email/...`: verification and change of the account's address (openapi.yaml; README,
 * "Email verification and change"). The token routes need no access token: the token proves the
 * mailbox, and with REQUIRE_VERIFIED_EMAIL an unverified account has no way to get one.
 */
export const emailRoutes = new Hono<AppEnv>()
  // The same 202 whether or not a mail went out: the answer names no account.
  .post('/verify/send', async (c) => {
    const body = await readJson(c, SendBody)
    await requestVerificationMail(c.get('tessera'), body.email, clientContext(c))
    return c.body(null, 202)
  })

  .post('/verify', async (c) => {
    const body = await readJson(c, TokenBody)
    await verifyEmail(c.get('tessera'), body.token, clientContext(c))
    return c.body(null, 204)
  })

  .post('/change', requireUser, async (c) => {
    const body = await readJson(c, ChangeBody)
    const pending = await requestEmailChange(
      c.get('tessera'),
      c.get('claims'),
      { email: body.email, currentPassword: body.current_password },
      clientContext(c),
    )
    return c.json({ email: pending.email, expires_at: formatPasetoTime(pending.expiresAt) }, 202)
  })

  .post('/change/confirm', async (c) => {
    const body = await readJson(c, TokenBody)
    await confirmEmailChange(c.get('tessera'), body.token, clientContext(c))
    return c.body(null, 204)
  })

  .post('/change/cancel', async (c) => {
    const body = await readJson(c, TokenBody)
    await cancelEmailChange(c.get('tessera'), body.token, clientContext(c))
    return c.body(null, 204)
  })
