import { type Kysely, sql } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// The retention job (src/retention; README, "Storage and retention"): the lease that lets one
// replica at a time prune, and the indexes its batched deletes probe so that no batch scans a
// whole table.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('prune_lease')
    // One row, id 1.
    .addColumn('id', 'integer', (c) => c.primaryKey())
    // The pass holding the lease (a random id), null when none does.
    .addColumn('holder', 'text')
    // Epoch ms: the lease is free from then on (a holder that died frees it by expiry).
    .addColumn('until', 'bigint', (c) => c.notNull())
    // Epoch ms: the end of the last completed pass, so replicas share one pass per interval.
    .addColumn('finished_at', 'bigint', (c) => c.notNull())
    .execute()
  await db
    .insertInto('prune_lease')
    .values({ id: 1, holder: null, until: 0, finished_at: 0 })
    .execute()

  const indexes: [string, string, string[]][] = [
    // The newest tokens of a family, which a live family keeps (src/retention/prune.ts).
    ['refresh_tokens_family_created', 'refresh_tokens', ['family_id', 'created_at']],
    ['refresh_tokens_expires_at', 'refresh_tokens', ['expires_at']],
    ['rate_limits_expire', 'rate_limits', ['expire']],
    ['password_resets_expires_at', 'password_resets', ['expires_at']],
    ['email_tokens_expires_at', 'email_tokens', ['expires_at']],
    ['login_devices_expires_at', 'login_devices', ['expires_at']],
  ]
  for (const [name, table, columns] of indexes) {
    await db.schema.createIndex(name).on(table).columns(columns).execute()
  }
  // Partial: only revoked sessions. A full index on revoked_at would tempt the planner away from
  // `sessions_live` (migration 0006) for the live-session count. Unrevoked sessions past their
  // expiry are found through `sessions_live` itself.
  await db.schema
    .createIndex('sessions_revoked_at')
    .on('sessions')
    .column('revoked_at')
    .where(sql.ref('revoked_at'), 'is not', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const name of [
    'refresh_tokens_family_created',
    'refresh_tokens_expires_at',
    'sessions_revoked_at',
    'rate_limits_expire',
    'password_resets_expires_at',
    'email_tokens_expires_at',
    'login_devices_expires_at',
  ]) {
    await db.schema.dropIndex(name).execute()
  }
  await db.schema.dropTable('prune_lease').execute()
}
