/**
 * SQLite's checkpoints run on a worker thread with its own connection (src/db/connect.ts,
 * docs/performance.md "Refresh on SQLite"): committed pages reach the database file without the
 * main connection checkpointing, a database only read from starts no worker, and closing the
 * handle stops the worker with its connection; a worker with nothing to copy stops by itself and
 * the next write starts it again. That the WAL starts over under a steady write load
 * (the main connection finishing past 4,000 pages) depends on how the threads are scheduled, so
 * it is a bench figure, not a test (docs/performance.md, "Second pass").
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import { sql } from 'kysely'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CHECKPOINTER_QUIET_MS, connectDatabase } from '../../src/db/connect.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function databaseFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-checkpoints-'))
  dirs.push(dir)
  return join(dir, 'db.sqlite')
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** This process's threads: the checkpointer is one. */
const threads = () => readdirSync('/proc/self/task').length

/** Whether the database file grew past `size` within 5 s: the checkpointer copied pages in. */
async function fileGrew(file: string, size: number): Promise<boolean> {
  const until = Date.now() + 5000
  while (statSync(file).size <= size && Date.now() < until) await pause(50)
  return statSync(file).size > size
}

/** Whether a thread beyond `count` started within 5 s (the checkpointer, after a write). */
async function threadStarted(count: number): Promise<boolean> {
  const until = Date.now() + 5000
  while (threads() <= count && Date.now() < until) await pause(50)
  return threads() > count
}

/** Whether this process's threads fell back to `count` within `ms` (the checkpointer stopped). */
async function threadsFellTo(count: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (threads() > count && Date.now() < until) await pause(100)
  return threads() <= count
}

describe('SQLite checkpoints on a worker thread', () => {
  // libuv starts its thread pool at its first use (the handle's look at the WAL is one): started
  // here, its threads are not taken for the checkpointer's.
  beforeAll(() => stat(tmpdir()))

  it('copies committed pages into the file without a checkpoint on the handle', async () => {
    const file = databaseFile()
    const handle = await connectDatabase(`sqlite:${file}`)
    try {
      const { sqlite } = handle.client as { sqlite: SqliteDatabase.Database }
      sqlite.exec('create table filler (id integer primary key, body text)')
      const insert = sqlite.prepare('insert into filler (body) values (?)')
      for (let i = 0; i < 500; i++) insert.run('x'.repeat(1000))
      // The rows are in the WAL only: nothing on the main connection checkpoints before 10,000
      // pages, so only the worker can bring the file to this size.
      // The worker starts at the first look at the WAL after these writes.
      const before = statSync(file).size
      expect(await fileGrew(file, before + 400 * 1000)).toBe(true)
      // A fresh connection reads every row (from the file or the WAL, whichever holds them).
      const other = new SqliteDatabase(file, { readonly: true })
      expect(other.prepare('select count(*) as n from filler').get()).toEqual({ n: 500 })
      other.close()
    } finally {
      await handle.close()
    }
  })

  it('close stops the worker and its connection; the file opens again', async () => {
    const file = databaseFile()
    const first = await connectDatabase(`sqlite:${file}`)
    const empty = statSync(file).size
    await sql`create table t (id integer primary key, body text)`.execute(first.db)
    await sql`insert into t (id, body) values (1, ${'x'.repeat(10_000)})`.execute(first.db)
    expect(await fileGrew(file, empty)).toBe(true)
    await first.close()
    // Closing twice is harmless (shutdown paths may both close).
    await first.close()
    const again = await connectDatabase(`sqlite:${file}`)
    try {
      const { rows } = await sql<{ id: number }>`select id from t`.execute(again.db)
      expect(rows).toEqual([{ id: 1 }])
    } finally {
      await again.close()
    }
  })

  it('a database only read from starts no checkpointer', async () => {
    const file = databaseFile()
    const first = await connectDatabase(`sqlite:${file}`)
    await sql`create table t (id integer primary key)`.execute(first.db)
    await first.close()
    const before = threads()
    const reader = await connectDatabase(`sqlite:${file}`)
    try {
      await sql`select count(*) from t`.execute(reader.db)
      await pause(2500)
      const read = threads()
      expect(read).toBeLessThanOrEqual(before)
      await sql`insert into t (id) values (1)`.execute(reader.db)
      expect(await threadStarted(read)).toBe(true)
    } finally {
      await reader.close()
    }
  })

  it('a quiet checkpointer stops, and the next write starts it again', async () => {
    const file = databaseFile()
    const before = threads()
    const handle = await connectDatabase(`sqlite:${file}`)
    try {
      await sql`create table t (id integer primary key)`.execute(handle.db)
      expect(await threadStarted(before)).toBe(true)
      // Everything copied back and nothing written: it stops within its quiet time.
      expect(await threadsFellTo(before, CHECKPOINTER_QUIET_MS + 3000)).toBe(true)
      await sql`insert into t (id) values (1)`.execute(handle.db)
      expect(await threadStarted(before)).toBe(true)
      const empty = statSync(file).size
      await sql`insert into t (id) values (2)`.execute(handle.db)
      await sql`create table u (id integer primary key, body text)`.execute(handle.db)
      await sql`insert into u (id, body) values (1, ${'x'.repeat(20_000)})`.execute(handle.db)
      // The restarted worker checkpoints: the rows reach the file.
      expect(await fileGrew(file, empty)).toBe(true)
    } finally {
      await handle.close()
    }
    const again = new SqliteDatabase(file, { readonly: true })
    expect(again.prepare('select count(*) as n from t').get()).toEqual({ n: 2 })
    again.close()
  }, 20_000)

  it('an in-memory database has no checkpointer and closes at once', async () => {
    const handle = await connectDatabase('sqlite::memory:')
    await sql`select 1`.execute(handle.db)
    await handle.close()
  })
})
