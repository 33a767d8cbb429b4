import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Passkeys (README, "Passkeys"): WebAuthn credentials of an account, and the challenges of the
// ceremonies that register and use them. A challenge is a row, not process memory, so options
// asked of one replica are answered on any other, once.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('passkeys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // The authenticator's credential id, base64url: how an assertion names its passkey.
    .addColumn('credential_id', 'text', (c) => c.notNull().unique())
    // The COSE public key, base64url. Public: no secret of the account is stored here.
    .addColumn('public_key', 'text', (c) => c.notNull())
    // The signature counter last seen (0 for authenticators that keep none, as synced ones).
    .addColumn('counter', 'bigint', (c) => c.notNull())
    // JSON array of the transports the browser reported (`internal`, `usb`, `hybrid`...).
    .addColumn('transports', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    // `singleDevice` or `multiDevice` (backup eligible), and whether it is backed up now.
    .addColumn('device_type', 'text', (c) => c.notNull())
    .addColumn('backed_up', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute()
  await db.schema.createIndex('passkeys_user').on('passkeys').column('user_id').execute()

  await db.schema
    .createTable('webauthn_challenges')
    // SHA-256 of the handle the client was given; the handle itself is never stored.
    .addColumn('id', 'text', (c) => c.primaryKey())
    // The WebAuthn challenge (base64url) the options carried; public, but bound to this row.
    .addColumn('challenge', 'text', (c) => c.notNull())
    // `register` or `authenticate`.
    .addColumn('purpose', 'text', (c) => c.notNull())
    // Whose ceremony it is; null for a passwordless sign-in, which names no user.
    .addColumn('user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('webauthn_challenges_expires_at')
    .on('webauthn_challenges')
    .column('expires_at')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('webauthn_challenges').execute()
  await db.schema.dropTable('passkeys').execute()
}
