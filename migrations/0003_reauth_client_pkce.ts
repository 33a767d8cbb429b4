import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Recent authentication for account changes, and binding federated login codes to the client
// that started the flow (README, "Recent authentication" and "Federated login").
export async function up(db: Kysely<any>): Promise<void> {
  // When the session's holder last re-proved the account (POST /v1/user/auth/reauthenticate);
  // null means at the login itself, `created_at`, so existing sessions need no backfill.
  await db.schema.alterTable('sessions').addColumn('authenticated_at', 'bigint').execute()

  // The client's PKCE challenge (S256) and opaque `state`, and for a link flow the session that
  // started it (checked again at the callback). One statement per column: SQLite adds one at a
  // time.
  await db.schema.alterTable('oauth_states').addColumn('client_code_challenge', 'text').execute()
  await db.schema.alterTable('oauth_states').addColumn('client_state', 'text').execute()
  await db.schema.alterTable('oauth_states').addColumn('link_session_id', 'text').execute()

  await db.schema.alterTable('login_codes').addColumn('code_challenge', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('login_codes').dropColumn('code_challenge').execute()
  await db.schema.alterTable('oauth_states').dropColumn('link_session_id').execute()
  await db.schema.alterTable('oauth_states').dropColumn('client_state').execute()
  await db.schema.alterTable('oauth_states').dropColumn('client_code_challenge').execute()
  await db.schema.alterTable('sessions').dropColumn('authenticated_at').execute()
}
