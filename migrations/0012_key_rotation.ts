import { type Kysely, sql } from 'kysely'

/**
 * Rotation without a gap and key revocation (README, "Keys"). A rotation first publishes a `next`
 * key and makes it `active` only at `activates_at`, when every verifier can have fetched it; for
 * a key that is or was active, `activates_at` is when it became active. A `revoked` key is
 * withdrawn at `revoked_at`, whatever it was before.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('signing_keys').addColumn('activates_at', 'bigint').execute()
  await db.schema.alterTable('signing_keys').addColumn('revoked_at', 'bigint').execute()
  // Until now a key became active when it was made.
  await db
    .updateTable('signing_keys')
    .set({ activates_at: sql.ref('created_at') })
    .execute()
  // At most one pending rotation, however many operators run `tessera keys rotate` at once; the
  // partial unique index of 0001 already allows at most one active key.
  await db.schema
    .createIndex('signing_keys_one_next')
    .on('signing_keys')
    .column('status')
    .unique()
    .where('status', '=', 'next')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('signing_keys_one_next').execute()
  await db.schema.alterTable('signing_keys').dropColumn('revoked_at').execute()
  await db.schema.alterTable('signing_keys').dropColumn('activates_at').execute()
}
