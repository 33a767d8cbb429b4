import { chmodSync, closeSync, existsSync, mkdirSync, openSync, stat, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { SHARE_ENV, Worker } from 'node:worker_threads'
import SqliteDatabase from 'better-sqlite3'
import {
  type DatabaseIntrospector,
  type Driver,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  type SqliteDialectConfig,
  sql,
  type TableMetadata,
} from 'kysely'
import type pg from 'pg'
import type { Logger } from '../logger.js'
import { databaseErrorCode } from './errors.js'
import { namingPool } from './named-statements.js'
import type { Database } from './schema.js'
import { createWriterTurn, type WriterTurn } from './writer-turn.js'

export type DatabaseClient =
  | {
      dialect: 'sqlite'
      sqlite: SqliteDatabase.Database
      /**
       * Runs `fn` while holding Kysely's one SQLite connection. Code that uses the raw handle must
       * go through this: otherwise its statements could land inside another request's open
       * transaction on the same connection and vanish if that transaction rolls back. The one
       * exception is synchronous code that first checks `sqlite.inTransaction` (the refresh's
       * fast path, src/sessions/refresh-sqlite.ts): nothing can interleave with it.
       */
      exclusive<T>(fn: () => Promise<T>): Promise<T>
      /**
       * A file's: its absolute path, and the turn its connections in this process take before
       * they write (writer-turn.ts). Kysely's connection takes it by itself. Absent in memory.
       */
      file?: { path: string; turn: WriterTurn }
      /** Runs `stop` when the handle closes, before the connection does (a thread's own). */
      onClose(stop: () => Promise<void>): void
    }
  | { dialect: 'postgres'; pool: pg.Pool }

export interface DatabaseHandle {
  db: Kysely<Database>
  /** The driver underneath, for libraries that keep their own tables (the rate limiter). */
  client: DatabaseClient
  close(): Promise<void>
}

export interface ConnectOptions {
  poolSize?: number
  /**
   * PostgreSQL: how long a query may wait for a connection (opening one, or a free one from a
   * full pool) before it fails as "database unavailable". Default 5000 ms.
   */
  connectTimeoutMs?: number
  /** Where a connection the server closed is reported (warn). */
  logger?: Pick<Logger, 'warn'>
  /** Told about permissions found too open (SQLite). */
  onWarning?: (message: string) => void
}

/**
 * Opens the database named by a `DATABASE_URL`: `sqlite:<path>` (`sqlite::memory:` too) or
 * `postgres://...`. The only place that knows which dialect is underneath.
 */
export async function connectDatabase(
  url: string,
  options: ConnectOptions = {},
): Promise<DatabaseHandle> {
  if (url.startsWith('sqlite:'))
    return connectSqlite(url.slice('sqlite:'.length), options.onWarning ?? (() => {}))
  if (/^postgres(ql)?:\/\//.test(url)) {
    // Loaded only when used: the driver and its type parsers are several MB a SQLite process
    // would carry for nothing.
    const { default: pg } = await import('pg')
    return connectPostgres(pg, url, options)
  }
  throw new Error('DATABASE_URL must be sqlite:<path> or postgres://...')
}

/**
 * The database file holds password hashes, sessions and the (encrypted) signing keys: only the
 * server's user may read it (README, "Databases"). A directory Tessera creates is 0700; the file is
 * created 0600 before SQLite opens it, and SQLite gives its -wal and -shm files the database
 * file's mode. A file or journal found more open is tightened. An existing directory is only
 * warned about: it may be shared (the working directory, /var/lib) and others may need it open.
 */
function securePaths(path: string, warn: (message: string) => void): void {
  const file = resolve(path)
  const dir = dirname(file)
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } else if ((statSync(dir).mode & 0o077) !== 0) {
    warn(
      `the database directory ${dir} is accessible to other users; ` +
        'make it 0700 if Tessera alone uses it',
    )
  }
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600))
  for (const each of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    if (existsSync(each) && (statSync(each).mode & 0o077) !== 0) {
      chmodSync(each, 0o600)
      warn(`${each} was readable by other users: its mode is now 0600`)
    }
  }
}

function connectSqlite(path: string, warn: (message: string) => void): DatabaseHandle {
  if (path !== ':memory:') securePaths(path, warn)
  const sqlite = new SqliteDatabase(path)
  // WAL: readers never block the writer. NORMAL is durable across process crashes in WAL mode
  // (only an OS crash or power loss can drop the last commits, never corrupt the file).
  sqlite.pragma('journal_mode = WAL')
  connectionSettings(sqlite)
  // An in-memory database has no WAL and no file another connection could open.
  const file = path === ':memory:' ? undefined : { path: resolve(path), turn: createWriterTurn() }
  const db = new Kysely<Database>({
    dialect: new TurnTakingSqliteDialect({ database: withStatementCache(sqlite) }, file?.turn),
  })
  const exclusive = <T>(fn: () => Promise<T>) => db.connection().execute(() => fn())
  const stopCheckpoints = file === undefined ? undefined : startCheckpoints(sqlite, path, exclusive)
  const stops: (() => Promise<void>)[] = []
  return {
    db,
    client: {
      dialect: 'sqlite',
      sqlite,
      exclusive,
      ...(file === undefined ? {} : { file }),
      onClose: (stop) => void stops.push(stop),
    },
    close: async () => {
      await Promise.all(stops.map((stop) => stop()))
      await stopCheckpoints?.()
      await db.destroy()
    },
  }
}

/** What every connection of Tessera's to a file sets for itself (the WAL mode is the file's). */
function connectionSettings(sqlite: SqliteDatabase.Database): void {
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')
}

/**
 * A second connection to a database file `connectDatabase` opened, for a thread that writes
 * beside the main one (src/sessions/refresh-writer.ts) in its turn (writer-turn.ts): the same
 * settings, the same automatic checkpoint bound (the checkpoints are the checkpointer's), and
 * its temporary files in memory.
 */
export function openWriterConnection(path: string): SqliteDatabase.Database {
  const sqlite = new SqliteDatabase(path, { fileMustExist: true })
  connectionSettings(sqlite)
  sqlite.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
  // Its batches run each presentation in a savepoint, whose sub-journal (a copy of every page the
  // batch had already changed) SQLite keeps in a temporary file by default: in memory, 3,554
  // against 2,881 refreshes/s (docs/performance.md, "Refresh on SQLite: the writer thread"). A
  // sub-journal only serves a rollback inside the transaction; the WAL alone holds commits.
  sqlite.pragma('temp_store = MEMORY')
  return sqlite
}

/** The WAL length (pages) at which a COMMIT checkpoints, should the checkpointer fall behind. */
const AUTOCHECKPOINT_PAGES = 10000

/** How often the WAL is copied back into the database file (docs/performance.md, "SQLite"). */
export const CHECKPOINT_INTERVAL_MS = 250
/** How long the checkpointer runs on without a write before it stops (it starts at the next). */
export const CHECKPOINTER_QUIET_MS = 5000
/** The WAL length (pages) from which the main connection finishes the worker's checkpoint. */
const FINISH_AT_PAGES = 4000

/**
 * The checkpointer's thread: its own connection to the file, a PASSIVE checkpoint on a timer.
 * Evaluated as a script (CommonJS), so it needs no file of its own beside the compiled code or
 * the TypeScript sources (tests run those); the driver's path comes from the parent's resolution.
 */
const CHECKPOINTER = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const sqlite = new Database(workerData.path, { fileMustExist: true })
sqlite.pragma('synchronous = NORMAL')
let quietTicks = 0
let lastLog = -1
const timer = setInterval(() => {
  try {
    const [{ log, checkpointed }] = sqlite.pragma('wal_checkpoint(PASSIVE)')
    // A long WAL: writes keep coming, the main connection finishes the job (startCheckpoints).
    if (log >= workerData.finishAt) parentPort.postMessage('long')
    // Quiet: every page copied back and none written since the last tick.
    quietTicks = log === lastLog && checkpointed === log ? quietTicks + 1 : 0
    lastLog = log
    if (quietTicks >= workerData.quietTicks) stop()
  } catch {
    // Busy (the main connection's automatic checkpoint holds the checkpointer's lock): next tick.
  }
}, workerData.intervalMs)
function stop() {
  clearInterval(timer)
  sqlite.close()
  parentPort.close()
}
parentPort.once('message', stop)
`

/**
 * Checkpoints off the request path, their copying and fsyncs mostly off the main thread
 * (docs/performance.md, "Refresh on SQLite"). SQLite's own (`wal_autocheckpoint`, 1000 pages by
 * default) runs inside the COMMIT of whichever write fills the WAL: every ~115th refresh paid for
 * copying the WAL back and its fsyncs. Here a worker thread with its own connection to the same
 * file runs a PASSIVE checkpoint four times a second (WAL lets any connection checkpoint; PASSIVE
 * never waits for a reader or blocks a writer). The main connection's automatic checkpoint runs
 * only when the WAL reaches 10,000 pages (40 MB), should the worker fall behind. Durability is
 * unchanged (docs/performance.md, "Durability of the SQLite settings"): with `synchronous =
 * NORMAL` in WAL mode a commit is written to the WAL before it returns, so a process crash
 * (kill -9) loses nothing committed; the WAL is fsynced at each checkpoint, so a power loss or
 * OS crash may drop the commits since the last one (a fraction of a second under load), never
 * corrupting the file. Returns how to stop it: after the worker has closed its connection.
 */
function startCheckpoints(
  sqlite: SqliteDatabase.Database,
  path: string,
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
): () => Promise<void> {
  sqlite.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
  // The worker (a second V8 instance, about 9 MB of RSS) starts only once the WAL has been
  // written to since the database was opened or since the worker last stopped: a command that
  // only reads or ends within a quarter of a second, and a server that has not written yet,
  // never pay for it. The worker stops by itself after CHECKPOINTER_QUIET_MS without a write,
  // everything copied back, so an idle server gives that memory back (docs/performance.md,
  // "Idle memory"). A write landing between its last look and the watch's next one waits in the
  // WAL, committed, for the next write or the automatic checkpoint.
  const wal = `${resolve(path)}-wal`
  let seen = walWrittenAt(wal)
  let worker: Worker | undefined
  let stopped: Promise<void> | undefined
  let watch: NodeJS.Timeout | undefined
  const watchWal = () => {
    watch = setInterval(() => {
      stat(wal, (error, stats) => {
        if (error !== null || worker !== undefined || stopped !== undefined) return
        // Opening the database makes an empty WAL: only one with frames in it was written to.
        if (stats.size > 0 && stats.mtimeMs !== seen) {
          const started = startCheckpointer(sqlite, path, exclusive)
          worker = started
          started.once('exit', () => {
            if (worker !== started || stopped !== undefined) return
            worker = undefined
            seen = walWrittenAt(wal)
            watchWal()
          })
        }
        seen = stats.mtimeMs
        if (worker !== undefined) clearInterval(watch)
      })
    }, WAL_WATCH_MS)
    watch.unref()
  }
  watchWal()
  return () => {
    clearInterval(watch)
    stopped ??= new Promise<void>((done) => {
      if (worker === undefined || worker.threadId === -1) return done()
      worker.once('exit', () => done())
      // Held until it has closed its connection: unreferenced, a process with nothing else to do
      // (a CLI command closing its database) would exit here, before its exit code is set.
      worker.ref()
      worker.postMessage('close')
    })
    return stopped
  }
}

function walWrittenAt(wal: string): number | undefined {
  try {
    return statSync(wal).mtimeMs
  } catch {
    return undefined
  }
}

/** How often the WAL file is looked at until the checkpointer starts (one async stat). */
const WAL_WATCH_MS = CHECKPOINT_INTERVAL_MS

function startCheckpointer(
  sqlite: SqliteDatabase.Database,
  path: string,
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
): Worker {
  const worker = new Worker(CHECKPOINTER, {
    eval: true,
    workerData: {
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      path: resolve(path),
      intervalMs: CHECKPOINT_INTERVAL_MS,
      finishAt: FINISH_AT_PAGES,
      quietTicks: Math.ceil(CHECKPOINTER_QUIET_MS / CHECKPOINT_INTERVAL_MS),
    },
    // Nothing of the parent's environment or stdin is the checkpointer's business.
    env: SHARE_ENV,
    stdin: false,
  })
  // Under a steady write load commits land while the worker copies, so its checkpoint never
  // reaches the WAL's end and the WAL is never started over; the automatic checkpoint would do
  // that at 10,000 pages, copying and fsyncing inside a COMMIT. When the worker finds the WAL
  // past 4,000 pages, the main connection finishes its checkpoint between requests instead: the
  // pages written meanwhile, with the two fsyncs (a wait of the main thread, so not more often
  // than that), after which the next commit starts the WAL from its beginning again. Under a
  // lighter load the worker's checkpoint reaches the end by itself.
  worker.on('message', () => {
    exclusive(async () => sqlite.pragma('wal_checkpoint(PASSIVE)')).catch(() => {
      // Busy or closing: the worker's next checkpoint (or the automatic one) catches up.
    })
  })
  // A failed checkpointer (the file gone, a driver error) leaves the automatic checkpoint on the
  // main connection, which bounds the WAL as before; it never takes the process down.
  worker.on('error', () => {})
  // Like the timer it replaces, it does not keep a process alive that has nothing else to do.
  worker.unref()
  return worker
}

const INT8_OID = 20

function connectPostgres(
  pg: typeof import('pg').default,
  url: string,
  options: ConnectOptions,
): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    // Without it a query waits forever for a server that does not answer (README "Database
    // outages"); with it, it fails and the request gets 503.
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    // A server that vanished without closing the socket is noticed instead of waited on.
    keepAlive: true,
    // Epoch-millisecond columns are bigint; they fit a JS number until the year 287396.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  })
  // The server may close any connection (restart, failover, pg_terminate_backend,
  // idle_session_timeout, a pooler restart). pg reports that as an 'error' event, and an
  // EventEmitter without a listener throws it: the whole process would exit. pg-pool forwards
  // errors of idle clients to the pool and has already dropped the client; a checked-out client
  // between two queries has no pool listener at all, so each client gets its own. The query that
  // was running, if any, rejects on its own, and pg-pool drops the dead client when it is released.
  const report = (err: Error) =>
    options.logger?.warn(
      { code: databaseErrorCode(err), message: err.message },
      'database connection lost; it is dropped from the pool',
    )
  pool.on('error', report)
  pool.on('connect', (client) => client.on('error', () => {}))
  // The hot statements run by name (named-statements.ts, docs/performance.md "Named statements").
  const db = new Kysely<Database>({
    dialect: new CurrentSchemaPostgresDialect({ pool: namingPool(pool) }),
  })
  return {
    db,
    client: { dialect: 'postgres', pool },
    close: () => db.destroy(),
  }
}

/**
 * Kysely's SQLite driver, its one connection held only in this thread's turn at the file
 * (writer-turn.ts): taken after the driver's own mutex, given back before it, for every query
 * and for a transaction from BEGIN to COMMIT, so another thread of this process never writes in
 * between. Reads take it too: whether a statement writes is not known here.
 */
class TurnTakingSqliteDialect extends SqliteDialect {
  constructor(
    config: SqliteDialectConfig,
    private readonly turn: WriterTurn | undefined,
  ) {
    super(config)
  }

  override createDriver(): Driver {
    const driver = super.createDriver()
    const turn = this.turn
    if (turn === undefined) return driver
    const acquire = driver.acquireConnection.bind(driver)
    const release = driver.releaseConnection.bind(driver)
    driver.acquireConnection = async () => {
      const connection = await acquire()
      try {
        await turn.take()
      } catch (error) {
        await release(connection)
        throw error
      }
      return connection
    }
    driver.releaseConnection = async (connection) => {
      turn.give()
      await release(connection)
    }
    return driver
  }
}

/**
 * Kysely's SQLite driver prepares every statement anew; better-sqlite3 statements are reusable,
 * and preparing costs about as much as running a small query. Cache them by SQL text (the SQL
 * Kysely compiles has placeholders, so the set of texts is small and bounded by the code).
 */
function withStatementCache(sqlite: SqliteDatabase.Database, max = 1000) {
  const cache = new Map<string, SqliteDatabase.Statement>()
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let statement = cache.get(sql)
      if (statement === undefined) {
        statement = sqlite.prepare(sql)
        if (cache.size >= max) cache.delete(cache.keys().next().value as string)
        cache.set(sql, statement)
      }
      return statement
    },
  }
}

/**
 * Kysely's PostgreSQL introspector, which its migrator uses to find its own tables, lists the
 * tables of every schema in the database and calls `has_schema_privilege` and
 * `pg_get_serial_sequence` per column. A schema another client drops while that query runs is
 * still in the query's catalog snapshot but no longer resolves by name, so the migration failed
 * (3F000, 42P01) for something that was not Tessera's: several Tessera databases sharing one
 * PostgreSQL database as schemas (the test suite's do) broke each other's start-up. Tessera
 * migrates its own schema only (docs/architecture.md), so its introspector looks at that one.
 */
class CurrentSchemaPostgresDialect extends PostgresDialect {
  // biome-ignore lint/suspicious/noExplicitAny: Kysely's introspector signature.
  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return {
      async getSchemas() {
        const { rows } = await sql<{ name: string }>`
          select nspname as name from pg_catalog.pg_namespace`.execute(db)
        return rows
      },
      getTables: () => currentSchemaTables(db),
      async getMetadata() {
        return { tables: await currentSchemaTables(db) }
      },
    }
  }
}

/** The tables and views of the current schema, without their columns (nothing reads them). */
// biome-ignore lint/suspicious/noExplicitAny: any database, as Kysely's introspector takes it.
async function currentSchemaTables(db: Kysely<any>): Promise<TableMetadata[]> {
  const { rows } = await sql<{ name: string; schema: string; is_view: boolean }>`
    select c.relname as name, n.nspname as schema, c.relkind = 'v' as is_view
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and c.relkind in ('r', 'v', 'p')`.execute(db)
  return rows.map((row) => ({
    name: row.name,
    schema: row.schema,
    isView: row.is_view,
    columns: [],
  }))
}
