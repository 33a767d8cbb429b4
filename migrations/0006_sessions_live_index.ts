import { type Kysely, sql } from 'kysely'

/**
 * The `tessera_sessions_live` gauge counts sessions that are not revoked and not expired
 * (src/metrics.ts). Without an index that is a scan of every session ever created; this partial
 * index holds only unrevoked sessions, ordered by expiry, so the count reads just the live ones.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('sessions_live')
    .on('sessions')
    .column('expires_at')
    .where(sql.ref('revoked_at'), 'is', null)
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sessions_live').execute()
}
