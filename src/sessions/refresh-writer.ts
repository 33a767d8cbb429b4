/**
 * The refresh writer thread's entry (docs/performance.md, "Refresh on SQLite: the writer
 * thread"): its own connection to the database file, the rotation of sqlite-rotation.ts run in the
 * file's turn (src/db/writer-turn.ts), one presentation per message, answered in order. Started
 * and stopped by refresh-writer-thread.ts; nothing else runs here.
 */
import type { KeyObject } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'
import { Kysely, SqliteDialect } from 'kysely'
import { openWriterConnection } from '../db/connect.js'
import type { Database } from '../db/schema.js'
import { createWriterTurn } from '../db/writer-turn.js'
import type { AccessGrant } from '../tokens/grant.js'
import { type SecretKey, secretKeyOf } from '../tokens/sign.js'
import { type RotationConfig, type SqliteRotated, sqliteRotation } from './sqlite-rotation.js'

/** What the thread is started with. */
export interface WriterData {
  path: string
  turn: SharedArrayBuffer
  config: RotationConfig
}

/** One presentation; `key` comes with a kid the thread has not been given before. */
export interface WriterRequest {
  id: number
  hash: string
  now: number
  kid: string
  key?: KeyObject
  grant: AccessGrant | undefined
}

export type WriterAnswer =
  | { id: number; rotated: SqliteRotated | undefined }
  | { id: number; failed: string }

/** The signing keys kept: the active one and the one before it, across a key rotation. */
const KEYS_KEPT = 4
/** Presentations in one transaction at most: the main thread waits for the turn meanwhile. */
const BATCH_MAX = 32

if (parentPort !== null) serve(parentPort, workerData as WriterData)

function serve(port: NonNullable<typeof parentPort>, data: WriterData): void {
  const sqlite = openWriterConnection(data.path)
  // Kysely only compiles the statements here (bind, src/db/prepared.ts); it runs none.
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) })
  const rotate = sqliteRotation(sqlite, db)
  const turn = createWriterTurn(data.turn)
  const keys = new Map<string, SecretKey>()

  // Presentations that arrived together are rotated in one transaction, one COMMIT for all (its
  // WAL writes are most of a rotation's cost); each is answered once that COMMIT has returned.
  const queue: WriterRequest[] = []
  let draining = false
  let closing = false
  port.on('message', (message: WriterRequest | 'close') => {
    if (message === 'close') closing = true
    else queue.push(message)
    if (!draining) {
      draining = true
      setImmediate(drain)
    }
  })
  port.postMessage('ready')

  function drain(): void {
    while (queue.length > 0) {
      const batch = queue.splice(0, BATCH_MAX)
      for (const answer of rotateAll(batch)) port.postMessage(answer)
    }
    draining = false
    if (closing) {
      sqlite.close()
      port.close()
    }
  }

  function rotateAll(batch: WriterRequest[]): WriterAnswer[] {
    const requests = batch.map((request) => {
      if (request.key !== undefined) {
        if (keys.size >= KEYS_KEPT) keys.delete(keys.keys().next().value as string)
        keys.set(request.kid, secretKeyOf(request.key))
      }
      const key = keys.get(request.kid)
      if (key === undefined) throw new Error(`refresh writer: no key ${request.kid}`)
      return {
        hash: request.hash,
        now: request.now,
        signer: { kid: request.kid, key },
        grant: request.grant,
      }
    })
    let results: (SqliteRotated | undefined | Error)[]
    turn.takeBlocking()
    try {
      results = rotate.many(data.config, requests)
    } catch (error) {
      // The transaction as a whole failed (BEGIN or COMMIT): nothing of it was written.
      const failed = error instanceof Error ? error : new Error(String(error))
      results = batch.map(() => failed)
    } finally {
      turn.give()
    }
    return batch.map((request, i) => {
      const result = results[i]
      return result instanceof Error
        ? { id: request.id, failed: result.message }
        : { id: request.id, rotated: result }
    })
  }
}
