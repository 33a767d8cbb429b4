import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// Tessera's own pages sign a browser in with a session row of its own kind (README, "Pages").
export async function up(db: Kysely<any>): Promise<void> {
  // `api`: a refresh-token family (every session so far); `browser`: the session of a
  // `tessera_session` cookie, which has no refresh tokens.
  await db.schema
    .alterTable('sessions')
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('api'))
    .execute()
  // SHA-256 of the cookie's secret, for browser sessions only; the cookie itself is only ever in
  // the browser. Unique: one cookie names one session (NULLs of API sessions do not collide).
  await db.schema.alterTable('sessions').addColumn('cookie_hash', 'text').execute()
  await db.schema
    .createIndex('sessions_cookie_hash')
    .on('sessions')
    .column('cookie_hash')
    .unique()
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sessions_cookie_hash').execute()
  await db.schema.alterTable('sessions').dropColumn('cookie_hash').execute()
  await db.schema.alterTable('sessions').dropColumn('kind').execute()
}
