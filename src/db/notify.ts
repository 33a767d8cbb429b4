import { type Kysely, PostgresAdapter, sql } from 'kysely'
import type pg from 'pg'
import type { Logger } from '../logger.js'
import type { DatabaseClient } from './connect.js'
import { databaseErrorCode } from './errors.js'
import type { Database } from './schema.js'

/**
 * PostgreSQL LISTEN/NOTIFY, the one push channel between replicas (docs/revocation.md,
 * "Delivery across replicas"). On SQLite both ends are no-ops: there is one server process, and it
 * polls instead.
 *
 * The payload of every notification is the sender's `current_schema()`: several Tessera databases
 * may share one PostgreSQL database as schemas (the test suite's do), and a channel is
 * database-wide, so a listener ignores what another schema sent.
 */

/**
 * Queues a notification on `channel`. Inside a transaction PostgreSQL delivers it only if, and
 * when, that transaction commits, so a listener that reads on it sees the committed rows.
 */
export async function notify(db: Kysely<Database>, channel: string): Promise<void> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return
  await sql`select pg_notify(${channel}, current_schema())`.execute(db)
}

export interface ListenHandlers {
  /** A notification of this schema arrived. */
  onNotify(): void
  /**
   * The listening connection is (again) up: whatever was sent while it was down is lost, so the
   * caller reads what it may have missed.
   */
  onConnect(): void
  logger: Pick<Logger, 'warn'>
}

export interface Listener {
  close(): Promise<void>
}

const FIRST_RETRY_MS = 500
const MAX_RETRY_MS = 30_000
/**
 * An idle connection whose server vanished without closing it (a failover, a cut network) would
 * wait for TCP keep-alive, two hours by default: a query this often finds out within seconds.
 */
const PING_MS = 30_000
const PING_TIMEOUT_MS = 10_000

/**
 * LISTENs on `channel` over a connection of its own (a pooled one would be handed to other
 * queries), reconnecting with exponential backoff (0.5 s doubling up to 30 s) whenever it is lost:
 * the server restarted, `pg_terminate_backend`, a network cut (found by a `select 1` every 30 s
 * when nothing else shows it). A lost connection is logged at `warn` once, as the pool's are
 * (src/db/connect.ts). Undefined on SQLite.
 */
export async function listen(
  client: DatabaseClient,
  channel: string,
  handlers: ListenHandlers,
): Promise<Listener | undefined> {
  if (client.dialect !== 'postgres') return undefined
  const { default: pgModule } = await import('pg')
  const options = client.pool.options
  let connection: pg.Client | undefined
  let retryMs = FIRST_RETRY_MS
  let timer: NodeJS.Timeout | undefined
  let closed = false
  const ping = setInterval(() => {
    const current = connection
    current?.query('select 1').catch((error: Error) => lost(error, current))
  }, PING_MS)
  ping.unref()

  const scheduleReconnect = () => {
    if (closed || timer !== undefined) return
    timer = setTimeout(() => {
      timer = undefined
      void connect()
    }, retryMs)
    timer.unref()
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS)
  }

  const lost = (error: Error | undefined, current: pg.Client) => {
    if (connection !== current) return
    connection = undefined
    current.removeAllListeners('notification')
    current.on('error', () => {})
    void current.end().catch(() => {})
    if (closed) return
    handlers.logger.warn(
      { code: error === undefined ? 'closed' : databaseErrorCode(error), message: error?.message },
      `database connection for LISTEN ${channel} lost; reconnecting`,
    )
    scheduleReconnect()
  }

  async function connect(): Promise<void> {
    const current = new pgModule.Client({
      connectionString: options.connectionString,
      connectionTimeoutMillis: options.connectionTimeoutMillis,
      keepAlive: true,
      query_timeout: PING_TIMEOUT_MS,
      // Tells an operator's pg_stat_activity what the one long-lived idle connection is.
      application_name: `${options.application_name ?? process.env.PGAPPNAME ?? 'tessera'}:listen`,
    })
    connection = current
    current.on('error', (error) => lost(error, current))
    current.on('end', () => lost(undefined, current))
    try {
      await current.connect()
      const schema = (await current.query<{ schema: string }>('select current_schema() as schema'))
        .rows[0]?.schema
      current.on('notification', (message) => {
        if (message.channel === channel && message.payload === schema) handlers.onNotify()
      })
      await current.query(`LISTEN ${pgModule.escapeIdentifier(channel)}`)
    } catch (error) {
      lost(error as Error, current)
      return
    }
    if (closed) {
      await current.end().catch(() => {})
      return
    }
    retryMs = FIRST_RETRY_MS
    handlers.onConnect()
  }

  await connect()
  return {
    async close() {
      closed = true
      clearInterval(ping)
      if (timer !== undefined) clearTimeout(timer)
      const current = connection
      connection = undefined
      if (current !== undefined) {
        current.removeAllListeners()
        current.on('error', () => {})
        await current.end().catch(() => {})
      }
    },
  }
}
