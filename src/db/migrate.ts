import { type Kysely, type Migration, type MigrationResultSet, Migrator } from 'kysely'
import * as initial from '../../migrations/0001_initial.js'

// Listed here rather than read from the folder so that the compiled server, the tests and a
// bundled build all see the same migrations.
const migrations: Record<string, Migration> = {
  '0001_initial': initial,
}

/** Applies every pending migration. Like Kysely's migrator it reports rather than throws. */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  })
  return migrator.migrateToLatest()
}

/** Applies pending migrations or throws one error that names the failing migration. */
export async function migrateOrThrow(db: Kysely<any>): Promise<void> {
  const { error, results } = await migrateToLatest(db)
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown'
    throw new Error(`Database migration ${failed} failed: ${String(error)}`, { cause: error })
  }
}
