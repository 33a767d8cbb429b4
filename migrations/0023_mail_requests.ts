import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Requests that mail an address (a password reset, a verification sent again) waiting for the
// server's background pass (README, "Password reset"): the request path writes one row of this
// shape whether the address has an account or not, and answers; the pass deletes the row in the
// transaction that does the account's work, so each request is resolved once, and a row left by
// a process that stopped is resolved later.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mail_requests')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('email_normalized', 'text', (c) => c.notNull())
    .addColumn('ip', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('mail_requests_created_at')
    .on('mail_requests')
    .column('created_at')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mail_requests').execute()
}
