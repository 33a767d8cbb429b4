import type pg from 'pg'

export interface SeenQuery {
  sql: string
  parameters: unknown[]
  /** The prepared statement's name; undefined for the unnamed statement. */
  name: string | undefined
  /** Which pooled connection ran it (numbered in the order the pool first handed them out). */
  connection: number
}

/**
 * Records every query the app's pool runs, by wrapping `query` on each pg client as the pool
 * hands it out (the driver's method, not Tessera's code: Kysely calls `client.query(sql, params)`,
 * a named statement `client.query({ name, text, values })`).
 */
export function recordQueries(pool: pg.Pool): SeenQuery[] {
  const seen: SeenQuery[] = []
  const wrapped = new WeakSet<pg.PoolClient>()
  let connections = 0
  pool.on('acquire', (client) => {
    if (wrapped.has(client)) return
    wrapped.add(client)
    const connection = ++connections
    const query = client.query.bind(client) as (...args: unknown[]) => unknown
    ;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
      const [first, second] = args
      if (typeof first === 'string') {
        const parameters = Array.isArray(second) ? second : []
        seen.push({ sql: first, parameters, name: undefined, connection })
      } else {
        const config = first as { text?: string; values?: unknown[]; name?: string }
        const parameters = config.values ?? []
        seen.push({ sql: String(config.text), parameters, name: config.name, connection })
      }
      return query(...args)
    }
  })
  return seen
}
