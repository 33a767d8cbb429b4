import type { Kysely, Transaction } from 'kysely'
import type { Database } from './schema.js'

/**
 * Runs `fn` in a transaction, or inside the caller's one when `db` already is a transaction, so
 * domain functions compose into one atomic change (Kysely has no nested transactions).
 */
export function inTransaction<T>(
  db: Kysely<Database>,
  fn: (tx: Kysely<Database>) => Promise<T>,
): Promise<T> {
  if (db.isTransaction) return fn(db)
  return db.transaction().execute((tx: Transaction<Database>) => fn(tx))
}
