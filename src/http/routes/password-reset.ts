import { Hono } from 'hono'
import * as v from 'valibot'
import { requestPasswordReset, resetPassword } from '../../accounts/password-reset.js'
import { addressBucket } from '../../rate-limit/address-bucket.js'
import { emailField, passwordField, readJson, resetTokenField } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'

const ForgotBody = v.object({ email: emailField })
const ResetBody = v.object({ token: resetTokenField, new_password: passwordField })

/**
 * The one answer of every accepted request (openapi.yaml), whether the address has an account,
 * a federated-only one, none, or is over its budget: nothing in it tells them apart.
 */
export const FORGOT_ANSWER = {
  status: 'accepted',
  detail: 'If this address can receive mail from us, a message with the next step is on its way.',
} as const

/** `/v1/user/auth/password/...`: password reset by mail (README, "Password reset"). */
export const passwordResetRoutes = new Hono<AppEnv>()
  .post('/auth/password/forgot', async (c) => {
    const t = c.get('tessera')
    const client = clientContext(c)
    await t.limits.passwordResetPerIp.consume(addressBucket(client.ip))
    const body = await readJson(c, ForgotBody)
    await requestPasswordReset(t, body.email, client)
    return c.json(FORGOT_ANSWER, 202)
  })

  .post('/auth/password/reset', async (c) => {
    const body = await readJson(c, ResetBody)
    await resetPassword(c.get('tessera'), body.token, body.new_password, clientContext(c))
    return c.body(null, 204)
  })
