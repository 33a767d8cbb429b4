import { Hono } from 'hono'
import { invalidClientCredentials, requirePermission } from '../../clients/authenticate.js'
import { publicProfile } from '../../clients/profiles.js'
import { uuidParam } from '../body.js'
import { requestClient } from '../client-auth.js'
import type { AppEnv } from '../env.js'

/** `/v1/service/...`: reads for service clients (README, "Service clients"), HTTP Basic. */
export const serviceRoutes = new Hono<AppEnv>().get('/users/:id', async (c) => {
  const client = await requestClient(c)
  if (client === undefined) throw invalidClientCredentials()
  requirePermission(client, 'read-users')
  const id = uuidParam(c.req.param('id'), 'user')
  return c.json(await publicProfile(c.get('tessera').db, id))
})
