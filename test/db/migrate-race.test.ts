/**
 * Several Tessera databases may share one PostgreSQL database as schemas (the suite's own test
 * apps do). Kysely's own introspector lists every schema's tables before a migration; a schema
 * dropped meanwhile used to fail the migration (3F000, 42P01) for something that is not
 * Tessera's. Tessera's introspector looks at its own schema only (src/db/connect.ts).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { connectDatabase } from '../../src/db/connect.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { createTestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { TEST_POSTGRES_URL } from '../support/postgres.js'

describe.skipIf(!dialects().includes('postgres'))(
  'migrations while other schemas of the database are dropped [postgres]',
  () => {
    it('every migration succeeds', { timeout: 60_000 }, async () => {
      const churn = new pg.Client({ connectionString: TEST_POSTGRES_URL })
      await churn.connect()
      let stop = false
      const churning = (async () => {
        while (!stop) {
          const schema = `churn_${randomBytes(6).toString('hex')}`
          await churn.query(`create schema ${schema}`)
          for (let i = 0; i < 8; i++) await churn.query(`create table ${schema}.t${i} (id serial)`)
          await churn.query(`drop schema ${schema} cascade`)
        }
      })()
      const errors: unknown[] = []
      try {
        for (let round = 0; round < 12; round++) {
          const database = await createTestDatabase('postgres')
          const handle = await connectDatabase(database.url, { poolSize: 2 })
          try {
            const { error } = await migrateToLatest(handle.db)
            if (error !== undefined) errors.push(error)
          } finally {
            await handle.close()
            await database.drop()
          }
        }
      } finally {
        stop = true
        await churning
        await churn.end()
      }
      expect(errors).toEqual([])
    })
  },
)
