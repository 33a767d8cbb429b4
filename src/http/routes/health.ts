import { Hono } from 'hono'
import { sql } from 'kysely'
import type { AppEnv } from '../env.js'
import { databaseUnavailableError, reportDatabaseUnavailable } from '../problem.js'

/**
 * Liveness needs nothing; readiness needs the database. The probe waits at most
 * DATABASE_CONNECT_TIMEOUT for a connection (README "Database outages"); any failure is 503.
 */
export const healthRoutes = new Hono<AppEnv>()
  .get('/health', (c) => c.json({ status: 'ok' }))
  .get('/ready', async (c) => {
    const t = c.get('tessera')
    try {
      await sql`select 1`.execute(t.db)
    } catch (cause) {
      reportDatabaseUnavailable(t, cause, c.get('requestId'))
      throw databaseUnavailableError(cause)
    }
    return c.json({ status: 'ready' })
  })
