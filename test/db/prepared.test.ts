/**
 * `preparedQuery`: compiled once per dialect, run with new values each time, inside and outside
 * transactions, on both databases.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js'
import { migrateOrThrow } from '../../src/db/migrate.js'
import { named } from '../../src/db/named-statements.js'
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
const allOfUser = preparedQuery((db, p: { id: string }) =>
  db.selectFrom('users').selectAll().where('id', '=', p.id),
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

describe('named statements', () => {
  it('refuses a text whose result columns come from a *', () => {
    expect(() => named('select * from users where id = $1')).toThrow(/result columns/)
    expect(() => named('select "u".* from users as u')).toThrow(/result columns/)
    expect(() => named('update users set role = null returning *')).toThrow(/result columns/)
    expect(named('select count(*) as n from users')).toBe('select count(*) as n from users')
  })
})

for (const dialect of dialects().filter((d) => d === 'postgres')) {
  describe('preparedQuery on PostgreSQL: named statements (docs/performance.md)', () => {
    let database: TestDatabase
    let handle: DatabaseHandle

    beforeAll(async () => {
      database = await createTestDatabase(dialect)
      handle = await connectDatabase(database.url)
      await migrateOrThrow(handle.db)
      await insertUser.execute(handle.db, { id: 'n1', email: 'n1@example.org', now: 1000 })
    })
    afterAll(async () => {
      await handle?.close()
      await database?.drop()
    })

    /** The statements prepared by name on the connection `tx` holds. */
    async function preparedOn(tx: typeof handle.db): Promise<string[]> {
      const { rows } = await sql<{ statement: string }>`
        select statement from pg_prepared_statements`.execute(tx)
      return rows.map((row) => row.statement)
    }

    it('runs listed columns by name with the compiled text, a * unnamed', async () => {
      await handle.db.transaction().execute(async (tx) => {
        await usersCreatedAfter.execute(tx, { after: 0, type: 'regular' })
        await allOfUser.execute(tx, { id: 'n1' })
        const prepared = await preparedOn(tx)
        expect(prepared).toContain(usersCreatedAfter.bind(tx, { after: 0, type: 'regular' }).sql)
        expect(prepared).not.toContain(allOfUser.bind(tx, { id: 'n1' }).sql)
      })
    })

    it('keeps running by name after a migration adds a column', async () => {
      await expect(
        handle.db.transaction().execute(async (tx) => {
          const before = await usersCreatedAfter.execute(tx, { after: 0, type: 'regular' })
          await sql`alter table users add column extra text`.execute(tx)
          const after = await usersCreatedAfter.execute(tx, { after: 0, type: 'regular' })
          expect(after.rows).toEqual(before.rows)
          // The * query, had it been named, would fail here ("cached plan must not change result
          // type"); unnamed, it just sees the new column.
          expect(await allOfUser.first(tx, { id: 'n1' })).toHaveProperty('extra', null)
          throw new Error('undo the column')
        }),
      ).rejects.toThrow('undo the column')
    })
  })
}
