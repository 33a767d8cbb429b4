/**
 * `preparedQuery`: compiled once per dialect, run with new values each time, inside and outside
 * transactions, on both databases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js'
import { migrateOrThrow } from '../../src/db/migrate.js'
import { preparedQuery } from '../../src/db/prepared.js'
import type { AccountType } from '../../src/db/schema.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'

const insertUser = preparedQuery((db, p: { id: string; email: string; now: number }) =>
  db.insertInto('users').values({
    id: p.id,
    email: p.email,
    email_normalized: p.email,
    password_hash: null,
    display_name: null,
    account_type: 'regular',
    verified: 0,
    disabled: 0,
    role: null,
    created_at: p.now,
    updated_at: p.now,
  }),
)
const usersCreatedAfter = preparedQuery((db, p: { after: number; type: AccountType }) =>
  db
    .selectFrom('users')
    .select(['id', 'email', 'created_at'])
    .where('created_at', '>', p.after)
    .where('account_type', '=', p.type)
    .where('role', 'is', null)
    .orderBy('created_at'),
)

for (const dialect of dialects()) {
  describe(`preparedQuery (${dialect})`, () => {
    let database: TestDatabase
    let handle: DatabaseHandle

    beforeAll(async () => {
      database = await createTestDatabase(dialect)
      handle = await connectDatabase(database.url)
      await migrateOrThrow(handle.db)
    })
    afterAll(async () => {
      await handle?.close()
      await database?.drop()
    })

    it("binds each run its own values by name, beside the query's constants", async () => {
      await insertUser.execute(handle.db, { id: 'u1', email: 'one@example.org', now: 1000 })
      await handle.db.transaction().execute(async (tx) => {
        await insertUser.execute(tx, { id: 'u2', email: 'two@example.org', now: 2000 })
        await insertUser.execute(tx, { id: 'u3', email: 'three@example.org', now: 3000 })
      })

      const after1500 = await usersCreatedAfter.execute(handle.db, { after: 1500, type: 'regular' })
      expect(after1500.rows).toEqual([
        { id: 'u2', email: 'two@example.org', created_at: 2000 },
        { id: 'u3', email: 'three@example.org', created_at: 3000 },
      ])
      expect(await usersCreatedAfter.first(handle.db, { after: 0, type: 'regular' })).toMatchObject(
        { id: 'u1' },
      )
      expect(
        await usersCreatedAfter.first(handle.db, { after: 0, type: 'service' }),
      ).toBeUndefined()
    })

    it('rolls back with the transaction it ran in', async () => {
      await expect(
        handle.db.transaction().execute(async (tx) => {
          await insertUser.execute(tx, { id: 'u4', email: 'four@example.org', now: 4000 })
          throw new Error('abort')
        }),
      ).rejects.toThrow('abort')
      expect(
        await usersCreatedAfter.first(handle.db, { after: 3500, type: 'regular' }),
      ).toBeUndefined()
    })

    it('refuses a run that leaves a parameter out instead of binding the placeholder', async () => {
      await expect(
        usersCreatedAfter.execute(handle.db, { after: 0 } as { after: number; type: AccountType }),
      ).rejects.toThrow(/missing parameter "type"/)
    })
  })
}
