import { Hono } from 'hono'
import { assertSuperuser, toUserView } from '../../accounts/accounts.js'
import { promoteToSuperuser } from '../../accounts/promotion.js'
import { uuidParam } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

/** `/v1/admin/...`: superuser-only. */
export const adminRoutes = new Hono<AppEnv>()
  .use(requireUser)
  // Before anything else of the request is looked at, unknown admin paths included: to anyone
  // but a superuser the whole prefix answers 403 alike.
  .use(async (c, next) => {
    await assertSuperuser(c.get('tessera').db, c.get('claims').sub)
    await next()
  })
  .post('/users/:id/promote', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const claims = c.get('claims')
    const actor = { userId: claims.sub, sessionId: claims.sid }
    const user = await promoteToSuperuser(c.get('tessera'), actor, userId, clientContext(c))
    return c.json(toUserView(user))
  })
