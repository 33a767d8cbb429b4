import { Hono } from 'hono'
import { sql } from 'kysely'
import { TesseraError } from '../../errors.js'
import type { AppEnv } from '../env.js'

/** Liveness needs nothing; readiness needs the database. */
export const healthRoutes = new Hono<AppEnv>()
  .get('/health', (c) => c.json({ status: 'ok' }))
  .get('/ready', async (c) => {
    try {
      await sql`select 1`.execute(c.get('tessera').db)
    } catch (cause) {
      throw new TesseraError('service_unavailable', 'The database is not reachable', { cause })
    }
    return c.json({ status: 'ready' })
  })
