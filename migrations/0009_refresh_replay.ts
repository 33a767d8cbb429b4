import { type Kysely, sql } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.

/**
 * The reuse interval hands a just-rotated parent's presentation the same answer its first
 * presentation got (docs/refresh.md, "The reuse interval"). That answer is kept, sealed with a
 * server key, on the parent's row until the interval is over, its child is used or the family is
 * revoked, whichever comes first. Both columns are null otherwise, which is every existing row:
 * the migration changes no behaviour of the rows it finds (a `superseded` token stays reuse).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('refresh_tokens').addColumn('replay_sealed', 'text').execute()
  await db.schema.alterTable('refresh_tokens').addColumn('replay_until', 'bigint').execute()
  // The sweep reads only the rows that still hold a sealed answer, oldest first.
  await db.schema
    .createIndex('refresh_tokens_replay_until')
    .on('refresh_tokens')
    .column('replay_until')
    .where(sql.ref('replay_until'), 'is not', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('refresh_tokens_replay_until').execute()
  await db.schema.alterTable('refresh_tokens').dropColumn('replay_until').execute()
  await db.schema.alterTable('refresh_tokens').dropColumn('replay_sealed').execute()
}
