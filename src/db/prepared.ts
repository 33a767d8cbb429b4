import { randomBytes } from 'node:crypto'
import {
  type Compilable,
  type CompiledQuery,
  type DialectAdapter,
  type Kysely,
  PostgresAdapter,
  type QueryResult,
} from 'kysely'
import { named, returnsStar } from './named-statements.js'
import type { Database } from './schema.js'

/**
 * A query Kysely compiles once per dialect; each run only binds new values.
 *
 * Kysely builds and compiles a query's operation tree on every execution. On the hot paths
 * (refresh, introspection) that costs more than SQLite spends running the statements, so those
 * queries are written once with typed placeholders and run as compiled SQL. The SQL text is the
 * same on every run, which is also what lets the SQLite statement cache (`connect.ts`) reuse its
 * prepared statement, and on PostgreSQL run it as a named statement (named-statements.ts) unless
 * its result columns come from a `*` (`selectAll()`), which a named statement must not have.
 *
 * `build` gets one placeholder per parameter. A placeholder is an opaque marker value that stands
 * for one scalar bound value: use it where Kysely binds a value (`where(col, '=', p.x)`,
 * `set({ col: p.x })`, `values({ col: p.x })`), never in a list (`in`), never as an identifier,
 * and never compare it to null (Kysely writes `is null` only for a literal null).
 *
 * The SQL is cached per dialect adapter, which `withPlugin()` and `withSchema()` views share with
 * their parent: run prepared queries on the database handle or its transactions, never on such a
 * view (it would get SQL compiled without its plugin or schema).
 */
export interface PreparedQuery<Params, Row> {
  execute(db: Kysely<Database>, params: Params): Promise<QueryResult<Row>>
  /** The first row, or undefined. */
  first(db: Kysely<Database>, params: Params): Promise<Row | undefined>
  /**
   * The SQL and bound values `execute` would send, for a caller that runs them on the driver
   * itself: the synchronous SQLite refresh (src/sessions/sqlite-rotation.ts), which must not await.
   * `db` only selects the dialect; the SQL text is the same string on every call.
   */
  bind(db: Kysely<Database>, params: Params): { sql: string; parameters: unknown[] }
}

export function preparedQuery<Params extends Record<string, unknown>, Row>(
  build: (db: Kysely<Database>, params: Params) => Compilable<Row>,
): PreparedQuery<Params, Row> {
  // A random tag keeps markers from colliding with any value a query could contain.
  const tag = `\u0000tessera-param:${randomBytes(8).toString('hex')}:`
  const markers = new Proxy({} as Params, {
    get: (_, name) => (typeof name === 'string' ? tag + name : undefined),
  })
  const compiled = new WeakMap<
    DialectAdapter,
    { query: CompiledQuery<Row>; slots: (string | null)[] }
  >()

  function compile(db: Kysely<Database>) {
    const adapter = db.getExecutor().adapter
    let entry = compiled.get(adapter)
    if (entry === undefined) {
      const query = build(db, markers).compile()
      if (adapter instanceof PostgresAdapter && !returnsStar(query.sql)) named(query.sql)
      const slots = query.parameters.map((value) =>
        typeof value === 'string' && value.startsWith(tag) ? value.slice(tag.length) : null,
      )
      entry = { query, slots }
      compiled.set(adapter, entry)
    }
    return entry
  }

  function bound(db: Kysely<Database>, params: Params) {
    const { query, slots } = compile(db)
    const parameters = query.parameters.map((value, i) => {
      const slot = slots[i]
      if (slot === null || slot === undefined) return value
      if (!(slot in params)) throw new TypeError(`prepared query: missing parameter "${slot}"`)
      return params[slot]
    })
    return { query, parameters }
  }

  async function execute(db: Kysely<Database>, params: Params): Promise<QueryResult<Row>> {
    const { query, parameters } = bound(db, params)
    return db.executeQuery<Row>({ ...query, parameters })
  }

  return {
    execute,
    bind(db, params) {
      const { query, parameters } = bound(db, params)
      return { sql: query.sql, parameters }
    },
    async first(db, params) {
      return (await execute(db, params)).rows[0]
    },
  }
}
