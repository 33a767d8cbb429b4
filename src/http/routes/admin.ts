import { Hono } from 'hono'
import * as v from 'valibot'
import { toUserView } from '../../accounts/accounts.js'
import { promoteToSuperuser } from '../../accounts/promotion.js'
import { assertSuperuserPowers } from '../../mfa/policy.js'
import { adminResetSecondFactors, MAX_RESET_REASON } from '../../mfa/reset.js'
import { noControlCharacters, readJson, uuidParam } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

const ResetBody = v.object({
  reason: v.pipe(
    v.string(),
    v.trim(),
    v.minLength(1, 'is required'),
    v.maxLength(MAX_RESET_REASON, `must be at most ${MAX_RESET_REASON} characters`),
    noControlCharacters,
  ),
})

/** `/v1/admin/...`: superuser-only. */
export const adminRoutes = new Hono<AppEnv>()
  .use(requireUser)
  // Before anything else of the request is looked at, unknown admin paths included: to anyone
  // but a superuser the whole prefix answers 403 alike.
  // A superuser's powers need a session with a second factor (MFA_REQUIRED_FOR; README, "Second
  // factors"): `mfa_step_up_required` otherwise.
  .use(async (c, next) => {
    await assertSuperuserPowers(c.get('tessera'), c.get('claims'))
    await next()
  })
  .post('/users/:id/promote', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const claims = c.get('claims')
    const actor = { userId: claims.sub, sessionId: claims.sid }
    const user = await promoteToSuperuser(c.get('tessera'), actor, userId, clientContext(c))
    return c.json(toUserView(user))
  })
  .post('/users/:id/mfa/reset', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const body = await readJson(c, ResetBody)
    const claims = c.get('claims')
    const actor = { userId: claims.sub, sessionId: claims.sid, amr: claims.amr }
    await adminResetSecondFactors(c.get('tessera'), actor, userId, body.reason, clientContext(c))
    return c.body(null, 204)
  })
