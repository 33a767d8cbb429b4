import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Single-use link URLs (README, "Linking from an API client"): a client holding only a bearer
// token sends the browser to /link/<ticket>, which starts the link flow as a top-level navigation.
// A row, not process memory, so a ticket issued on one replica is redeemed on any other, once.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('link_tickets')
    // SHA-256 of the ticket; the ticket itself only ever travels in the URL handed to the client.
    .addColumn('ticket_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // The session whose recently authenticated bearer token asked for the ticket.
    .addColumn('session_id', 'text', (c) =>
      c.notNull().references('sessions.id').onDelete('cascade'),
    )
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('link_tickets_expires_at')
    .on('link_tickets')
    .column('expires_at')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('link_tickets').execute()
}
