import {
  type Kysely,
  type Migration,
  type MigrationResultSet,
  Migrator,
  PostgresAdapter,
  SqliteAdapter,
  sql,
} from 'kysely'
import * as initial from '../../migrations/0001_initial.js'
import * as federation from '../../migrations/0002_federation.js'
import * as reauthClientPkce from '../../migrations/0003_reauth_client_pkce.js'
import * as refreshHardening from '../../migrations/0004_refresh_hardening.js'
import * as loginDevices from '../../migrations/0005_login_devices.js'
import * as sessionsLive from '../../migrations/0006_sessions_live_index.js'
import * as browserSessions from '../../migrations/0007_browser_sessions.js'
import * as linkTickets from '../../migrations/0008_link_tickets.js'
import * as refreshReplay from '../../migrations/0009_refresh_replay.js'
import * as deviceAuthorizations from '../../migrations/0010_device_authorizations.js'
import * as revocationLog from '../../migrations/0011_revocation_log.js'
import * as keyRotation from '../../migrations/0012_key_rotation.js'
import * as mail from '../../migrations/0013_mail.js'
import * as emailOwnership from '../../migrations/0014_email_ownership.js'
import * as personalTokens from '../../migrations/0015_personal_tokens.js'
import * as serviceClients from '../../migrations/0017_service_clients.js'
import * as retention from '../../migrations/0019_retention.js'
import * as secondFactors from '../../migrations/0020_second_factors.js'
import * as passkeys from '../../migrations/0021_passkeys.js'
import * as amrCarriers from '../../migrations/0022_amr_carriers.js'
import * as mailRequests from '../../migrations/0023_mail_requests.js'

// Listed here rather than read from the folder so that the compiled server, the tests and a
// bundled build all see the same migrations.
const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_federation': federation,
  '0003_reauth_client_pkce': reauthClientPkce,
  '0004_refresh_hardening': refreshHardening,
  '0005_login_devices': loginDevices,
  '0006_sessions_live_index': sessionsLive,
  '0007_browser_sessions': browserSessions,
  '0008_link_tickets': linkTickets,
  '0009_refresh_replay': refreshReplay,
  '0010_device_authorizations': deviceAuthorizations,
  '0011_revocation_log': revocationLog,
  '0012_key_rotation': keyRotation,
  '0013_mail': mail,
  '0014_email_ownership': emailOwnership,
  '0015_personal_tokens': personalTokens,
  '0017_service_clients': serviceClients,
  '0019_retention': retention,
  '0020_second_factors': secondFactors,
  '0021_passkeys': passkeys,
  '0022_amr_carriers': amrCarriers,
  '0023_mail_requests': mailRequests,
}

/** Applies every pending migration. Like Kysely's migrator it reports rather than throws. */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return migrateSqliteExclusively(db)
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableSchema: await currentPostgresSchema(db),
  })
  return migrator.migrateToLatest()
}

/**
 * Kysely's migration lock is a no-op on SQLite (it assumes one connection), but several processes
 * can open one file: two servers, or `tessera migrate` / `tessera keys ...` next to a starting
 * server. On an empty file both read 0001 as pending and the second fails with "table users
 * already exists". BEGIN IMMEDIATE takes the file's write lock (waiting up to busy_timeout), so
 * one process migrates at a time and the next finds nothing pending; SQLite DDL is transactional,
 * so a failed migration leaves nothing behind.
 */
async function migrateSqliteExclusively(db: Kysely<any>): Promise<MigrationResultSet> {
  return db.connection().execute(async (conn) => {
    try {
      await sql`begin immediate`.execute(conn)
    } catch (error) {
      return { error }
    }
    let result: MigrationResultSet = { error: new Error('migration did not finish') }
    try {
      result = await new Migrator({
        db: conn,
        provider: { getMigrations: async () => migrations },
      }).migrateToLatest()
    } finally {
      await sql.raw(result.error === undefined ? 'commit' : 'rollback').execute(conn)
    }
    return result
  })
}

/** Applies pending migrations or throws one error that names the failing migration. */
export async function migrateOrThrow(db: Kysely<any>): Promise<void> {
  const { error, results } = await migrateToLatest(db)
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown'
    throw new Error(`Database migration ${failed} failed: ${String(error)}`, { cause: error })
  }
}

/**
 * On PostgreSQL, the schema unqualified names resolve to (the first of search_path). Without it
 * Kysely's migrator takes a `kysely_migration` table in *any* schema of the database as its own,
 * skips creating one here and then fails ("relation kysely_migration_lock does not exist").
 */
async function currentPostgresSchema(db: Kysely<any>): Promise<string | undefined> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return undefined
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(
    db,
  )
  return rows[0]?.schema ?? undefined
}
