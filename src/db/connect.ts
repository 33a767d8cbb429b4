import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely'
import type pg from 'pg'
import type { Database } from './schema.js'

export type DatabaseClient =
  | {
      dialect: 'sqlite'
      sqlite: SqliteDatabase.Database
      /**
       * Runs `fn` while holding Kysely's one SQLite connection. Code that uses the raw handle must
       * go through this: otherwise its statements could land inside another request's open
       * transaction on the same connection and vanish if that transaction rolls back.
       */
      exclusive<T>(fn: () => Promise<T>): Promise<T>
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
  /** Told about permissions found too open (SQLite). */
  onWarning?: (message: string) => void
}

/**
 * Opens the database named by a `DATABASE_URL`: `sqlite:<path>` (`sqlite::memory:` too) or
 * `postgres://...`. The only place that knows which dialect is underneath.
 */
export async function connectDatabase(url: string, options: ConnectOptions = {}): Promise<DatabaseHandle> {
  if (url.startsWith('sqlite:')) return connectSqlite(url.slice('sqlite:'.length), options.onWarning ?? (() => {}))
  if (/^postgres(ql)?:\/\//.test(url)) {
    // Loaded only when used: the driver and its type parsers are several MB a SQLite process
    // would carry for nothing.
    const { default: pg } = await import('pg')
    return connectPostgres(pg, url, options.poolSize ?? 10)
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
    warn(`the database directory ${dir} is accessible to other users; make it 0700 if Tessera alone uses it`)
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
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')
  const db = new Kysely<Database>({
    dialect: new SqliteDialect({ database: withStatementCache(sqlite) }),
  })
  return {
    db,
    client: { dialect: 'sqlite', sqlite, exclusive: (fn) => db.connection().execute(() => fn()) },
    close: () => db.destroy(),
  }
}

const INT8_OID = 20

function connectPostgres(pg: typeof import('pg').default, url: string, poolSize: number): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // Epoch-millisecond columns are bigint; they fit a JS number until the year 287396.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  })
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  return {
    db,
    client: { dialect: 'postgres', pool },
    close: () => db.destroy(),
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
