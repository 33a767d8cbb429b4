import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Service clients (README, "Service clients"): per-service credentials made with
// `tessera client create`, each limited to its permissions and revoked alone.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('service_clients')
    // The client_id (a random UUID); also the `sub` and `sid` of its access tokens.
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    // SHA-256 (hex) of the secret: 256 random bits need no slow hash, and the secret is never
    // stored.
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    // Comma-separated: `introspect`, `register-service`, `read-users`.
    .addColumn('permissions', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('service_clients').execute()
}
