import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
export async function up(db: Kysely<any>): Promise<void> {
  // The durable mail queue (README, "Mail"): a row exists iff the change that asked for the mail
  // committed; one replica at a time holds a row (`claim`, until `claimed_until`) while sending it,
  // and a delivered row is deleted.
  await db.schema
    .createTable('mail_queue')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('recipient', 'text', (c) => c.notNull())
    .addColumn('template', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('claim', 'text')
    .addColumn('claimed_until', 'bigint')
    .execute()
  await db.schema.createIndex('mail_queue_due').on('mail_queue').column('next_attempt_at').execute()
  // Password reset tokens by SHA-256; single use (`used_at`), expiring, and bound to the
  // credential version they were issued under, so any password change voids them.
  await db.schema
    .createTable('password_resets')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('credential_version', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('password_resets_user')
    .on('password_resets')
    .column('user_id')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('password_resets').execute()
  await db.schema.dropTable('mail_queue').execute()
}
