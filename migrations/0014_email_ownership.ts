import { type Kysely, sql } from 'kysely'

/**
 * Email ownership (README, "Email verification and change"). `users.email_verified` says the
 * account's current address was proven to be the owner's, by a link or code mailed to it or by a
 * provider that vouched for it; it is apart from `verified` (academic status). `email_tokens`
 * holds the single-use tokens of verification and of an email change, by SHA-256 only.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('email_verified', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
  // Accounts a provider created carry the provider's verified address (only verified ones are
  // taken), as does any account whose linked identity has the same address.
  await db
    .updateTable('users')
    .set({ email_verified: 1 })
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('identities')
          .select(sql`1`.as('one'))
          .whereRef('identities.user_id', '=', 'users.id')
          .where(sql`lower(identities.email)`, '=', sql.ref('users.email_normalized')),
      ),
    )
    .execute()
  await db.schema
    .createTable('email_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // `verify`, `change` (sent to the new address) or `cancel` (sent to the old one).
    .addColumn('purpose', 'text', (c) => c.notNull())
    // The address the token is about: the one to verify, or the new address of a change.
    .addColumn('email', 'text', (c) => c.notNull())
    // Pairs the confirmation and the cancellation of one email change.
    .addColumn('change_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('email_tokens_user')
    .on('email_tokens')
    .columns(['user_id', 'purpose'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('email_tokens').execute()
  await db.schema.alterTable('users').dropColumn('email_verified').execute()
}
