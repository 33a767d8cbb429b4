import { createHash } from 'node:crypto'
import type { PostgresPool, PostgresPoolClient } from 'kysely'
import type pg from 'pg'

/**
 * Named prepared statements on PostgreSQL (docs/performance.md, "Named statements").
 *
 * Kysely sends every query as the unnamed statement, which PostgreSQL parses, analyses and plans
 * on every run: on the refresh's two statements that was most of the database's CPU. A statement
 * run by name is parsed once per connection, and after a few runs PostgreSQL keeps a generic plan
 * for it (`plan_cache_mode` auto), so a run only binds and executes.
 *
 * The SQL texts that run by name are registered here; the pool Kysely gets (`namingPool`) sends
 * those texts with their name and everything else unnamed, as before. That keeps transactions
 * whole (a named statement runs on the connection Kysely holds, inside its transaction) and the
 * SQL exactly the text Kysely compiled. node-postgres prepares a name on a connection the first
 * time the connection runs it and remembers which names it has prepared, so any pooled
 * connection can run any registered statement; a reconnected connection prepares them again.
 */

/** SQL text → statement name. Only code registers texts, so the set is small and bounded. */
const names = new Map<string, string>()

/**
 * Whether `sql`'s result columns come from a `*` (`select *`, `"u".*`, `returning *`). Such a
 * statement may not run by name: PostgreSQL expands the `*` when it prepares the statement, and
 * once a migration adds a column (another replica's, during an upgrade) every later run of it on
 * that connection fails with "cached plan must not change result type".
 */
export function returnsStar(sql: string): boolean {
  return /(?:^|[\s,.])\*(?=\s|,|$)/.test(sql)
}

/**
 * Marks `sql` to run as a named statement on PostgreSQL and answers it unchanged. The name is a
 * digest of the text: stable across processes, and one text never shares a name with another.
 */
export function named(sql: string): string {
  if (returnsStar(sql)) throw new Error('a named statement must list its result columns')
  if (!names.has(sql)) {
    names.set(sql, `tessera_${createHash('sha256').update(sql).digest('hex').slice(0, 24)}`)
  }
  return sql
}

/** The name `sql` runs under, or undefined when it runs unnamed. */
export function statementName(sql: string): string | undefined {
  return names.get(sql)
}

/**
 * `pool` as Kysely's PostgreSQL driver takes it, with each registered text sent by its name.
 * The wrapper of a client is made once and kept: Kysely keys its connection objects by it.
 */
export function namingPool(pool: pg.Pool): PostgresPool {
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>()
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    // Kysely passes a text and its values (a cursor only when streaming, which passes through).
    const query = (text: string, values: unknown[]) => {
      const name = typeof text === 'string' ? names.get(text) : undefined
      return name === undefined ? client.query(text, values) : client.query({ name, text, values })
    }
    return {
      query: query as unknown as PostgresPoolClient['query'],
      release: () => client.release(),
    }
  }
  return {
    async connect() {
      const client = await pool.connect()
      let wrapper = wrappers.get(client)
      if (wrapper === undefined) {
        wrapper = wrap(client)
        wrappers.set(client, wrapper)
      }
      return wrapper
    },
    end: () => pool.end(),
  }
}
