import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
export async function up(db: Kysely<any>): Promise<void> {
  // One row per event that ends access (docs/revocation.md): a session revoked, a user disabled
  // (every token issued before `at`), a signing key revoked. `seq` is the feed's cursor, assigned
  // in commit order through the one row of `revocation_log_head` below.
  await db.schema
    .createTable('revocation_log')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute()
  // Pruning deletes by age.
  await db.schema.createIndex('revocation_log_at').on('revocation_log').column('at').execute()
  // The last cursor handed out. Each revoking transaction increments it, and the row lock it takes
  // is held until that transaction ends, so cursors are assigned in commit order.
  await db.schema
    .createTable('revocation_log_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .execute()
  await db.insertInto('revocation_log_head').values({ id: 1, seq: 0 }).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('revocation_log_head').execute()
  await db.schema.dropTable('revocation_log').execute()
}
