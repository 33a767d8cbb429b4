import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// The device authorization grant (RFC 8628; README, "Device login"): one row per started device
// login, in the database so that a code approved on one replica is redeemed on any other and
// works once across all of them.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('device_authorizations')
    // SHA-256 of the device code (256 random bits); the code itself stays with the device.
    .addColumn('device_code_hash', 'text', (c) => c.primaryKey())
    // HMAC-SHA256 of the normalised user code under a key derived from the key-encryption key:
    // 8 letters of 20 are ~34.5 bits, which a plain hash of a leaked row would not protect.
    .addColumn('user_code_hash', 'text', (c) => c.notNull().unique())
    .addColumn('client_id', 'text', (c) => c.notNull())
    // Who asked, shown on the verification page ("which client asks and from which address").
    .addColumn('client_ip', 'text')
    .addColumn('client_user_agent', 'text')
    // `pending`, `approved`, `denied` or `redeemed` (the token pair was handed out).
    .addColumn('status', 'text', (c) => c.notNull())
    // Seconds the device must wait between polls; slow_down adds 5 (RFC 8628 §3.5).
    .addColumn('interval_seconds', 'integer', (c) => c.notNull())
    .addColumn('last_polled_at', 'bigint')
    // The account and the browser session that approved or denied the code.
    .addColumn('user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('decided_by_session_id', 'text')
    .addColumn('decided_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('device_authorizations_expires_at')
    .on('device_authorizations')
    .column('expires_at')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('device_authorizations').execute()
}
