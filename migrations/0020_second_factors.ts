import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Second factors (README, "Second factors"): a TOTP credential and recovery codes per user, the
// single-use tickets between a password and its second factor, and the authentication methods
// (RFC 8176 `amr`) of each session.
export async function up(db: Kysely<any>): Promise<void> {
  // Space-separated RFC 8176 values (`pwd`, `otp`, `fed`, `mfa`, ...); null for sessions opened
  // before this migration, whose tokens carry no `amr`.
  await db.schema.alterTable('sessions').addColumn('amr', 'text').execute()
  await db.schema
    .createTable('totp_credentials')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    // The base32 secret, sealed under KEY_ENCRYPTION_KEY and bound to the user id.
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // Null while enrolment waits for its first code: a pending credential is no factor.
    .addColumn('confirmed_at', 'bigint')
    // The last time step a code was accepted for: no step is accepted twice (replay).
    .addColumn('last_used_step', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()
  await db.schema
    .createTable('recovery_codes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // SHA-256 (hex) of the code: 80 random bits need no slow hash.
    .addColumn('code_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('recovery_codes_user')
    .on('recovery_codes')
    .column('user_id')
    .execute()
  await db.schema
    .createTable('mfa_tickets')
    // SHA-256 (hex) of the ticket's 256 random bits.
    .addColumn('ticket_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // What proved the first factor: `password` or a federated provider's name.
    .addColumn('method', 'text', (c) => c.notNull())
    // Space-separated `amr` of the first factor.
    .addColumn('amr', 'text', (c) => c.notNull())
    // The credential version a password was checked against; null for a federated first factor.
    .addColumn('credential_version', 'integer')
    // The grant the login asked for (an API login's `audience`/`scope`), null for the default.
    .addColumn('audience', 'text')
    .addColumn('scope', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema.createIndex('mfa_tickets_user').on('mfa_tickets').column('user_id').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mfa_tickets').execute()
  await db.schema.dropTable('recovery_codes').execute()
  await db.schema.dropTable('totp_credentials').execute()
  await db.schema.alterTable('sessions').dropColumn('amr').execute()
}
