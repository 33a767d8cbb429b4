import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
export async function up(db: Kysely<any>): Promise<void> {
  // Device cookies (README, "Passwords and login"): a browser or CLI that logged in before has a
  // failed-login budget of its own, so others' failures cannot lock its owner out.
  await db.schema
    .createTable('login_devices')
    // SHA-256 of the cookie value; the cookie itself is only ever in the client.
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('login_devices_user_id')
    .on('login_devices')
    .columns(['user_id', 'created_at'])
    .execute()
  // Reading the published keys looks up `active` and `retiring` rows only, never the retired ones
  // that pile up over years of rotations (README, "Keys").
  await db.schema.createIndex('signing_keys_status').on('signing_keys').column('status').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('signing_keys_status').execute()
  await db.schema.dropTable('login_devices').execute()
}
