import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Password reset requests waiting for the server's background pass (README, "Password reset"):
// the request path writes one row of this shape for every address, whether it has an account or
// not, and answers; the pass deletes the row in the transaction that does the account's work, so
// each request is resolved once, and a row left by a process that stopped is resolved later.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('password_reset_requests')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('email_normalized', 'text', (c) => c.notNull())
    .addColumn('ip', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('password_reset_requests_created_at')
    .on('password_reset_requests')
    .column('created_at')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('password_reset_requests').execute()
}
