import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Federation state lives in the database (not process memory) so that a flow started on one
// replica can finish on another, and single use holds across replicas (docs/architecture.md).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('oauth_states')
    // SHA-256 of the `state` parameter; the raw value only ever travels to the provider and back.
    .addColumn('state_hash', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('code_verifier', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text')
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('link_user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
    // SHA-256 of the browser-binding cookie set when the flow started.
    .addColumn('browser_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('oauth_states_expires_at')
    .on('oauth_states')
    .column('expires_at')
    .execute()

  await db.schema
    .createTable('login_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('login_codes_expires_at')
    .on('login_codes')
    .column('expires_at')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('login_codes').execute()
  await db.schema.dropTable('oauth_states').execute()
}
