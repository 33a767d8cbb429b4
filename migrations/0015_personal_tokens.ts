import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Personal access tokens and job tokens (README, "Scripts, pipelines and services"). Each is a
// session row of its own kind (`pat`, `job`), so revoking it, logging out everywhere, a password
// change and disabling the user end it, and the revocation log names it like any session. This
// table holds what a session row does not.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('personal_tokens')
    // The id of its session row.
    .addColumn('id', 'text', (c) => c.primaryKey().references('sessions.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    // A PAT's first characters, shown in lists; null for job tokens, which have no secret here.
    .addColumn('prefix', 'text')
    // SHA-256 of a PAT's secret (a high-entropy secret: no salt or slow hash needed); unique, so
    // the exchange finds it by hash. Null for job tokens.
    .addColumn('token_hash', 'text', (c) => c.unique())
    .addColumn('audience', 'text', (c) => c.notNull())
    // Space-separated, as in the `scope` claim.
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // The last exchange of a PAT; null until the first.
    .addColumn('last_used_at', 'bigint')
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('personal_tokens_user')
    .on('personal_tokens')
    .column('user_id')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('personal_tokens').execute()
}
