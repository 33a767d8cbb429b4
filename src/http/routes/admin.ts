import { Hono } from 'hono'
import { getUser, promoteToSuperuser, toUserView } from '../../accounts/accounts.js'
import { TesseraError } from '../../errors.js'
import { uuidParam } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

/** `/v1/admin/...`: superuser-only. The account type is read from the database, not the token. */
export const adminRoutes = new Hono<AppEnv>()
  .use(requireUser)
  .use(async (c, next) => {
    // Only "no such user" means forbidden; a database failure must not read as one (it is a 503).
    const actor = await getUser(c.get('tessera').db, c.get('claims').sub).catch(
      (error: unknown) => {
        if (error instanceof TesseraError && error.code === 'not_found') return undefined
        throw error
      },
    )
    if (actor?.account_type !== 'superuser' || actor.disabled !== 0) {
      throw new TesseraError('forbidden', 'Only a superuser may do this')
    }
    await next()
  })
  .post('/users/:id/promote', async (c) => {
    const t = c.get('tessera')
    const userId = uuidParam(c.req.param('id'), 'user')
    const user = await promoteToSuperuser(t, c.get('claims').sub, userId, clientContext(c))
    return c.json(toUserView(user))
  })
