/**
 * The refresh writer thread's entry (docs/performance.md, "Refresh on SQLite: the writer
 * thread"): its own connection to the database file, the rotation of sqlite-rotation.ts run in the
 * file's turn (src/db/writer-turn.ts), one presentation per message, those that arrived together
 * in one transaction, each answered after its commit. Started and stopped by
 * refresh-writer-thread.ts; nothing else runs here.
 */
import type { KeyObject } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'
import { Kysely, SqliteDialect } from 'kysely'
import { openWriterConnection } from '../db/connect.js'
import type { Database } from '../db/schema.js'
import { createWriterTurn } from '../db/writer-turn.js'
import type { AccessGrant } from '../tokens/grant.js'
import { type SecretKey, secretKeyOf } from '../tokens/sign.js'
import {
  type RotationConfig,
  type RotationRequest,
  type SqliteRotated,
  sqliteRotation,
} from './sqlite-rotation.js'

/** What the thread is started with. */
export interface WriterData {
  path: string
  turn: SharedArrayBuffer
  config: RotationConfig
}

/**
 * One presentation (a message carries those of one turn of the main thread's event loop); `key`
 * comes with a kid the thread has not been given before. The answers of a batch come back as one
 * message.
 */
export interface WriterRequest {
  id: number
  hash: string
  now: number
  kid: string
  key?: KeyObject
  grant: AccessGrant | undefined
}

/** `failed`: the error as the main thread rebuilds it; its `code` tells a busy database (503). */
export type WriterAnswer =
  | { id: number; rotated: SqliteRotated | undefined }
  | { id: number; failed: { message: string; code?: string } }

/** Signing keys kept by kid (a few rotations' worth; the main thread counts the same). */
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
  port.on('message', (message: WriterRequest[] | 'close') => {
    if (message === 'close') closing = true
    else queue.push(...message)
    if (!draining) {
      draining = true
      setImmediate(drain)
    }
  })
  port.postMessage('ready')

  function drain(): void {
    while (queue.length > 0) {
      const batch = queue.splice(0, BATCH_MAX)
      port.postMessage(rotateAll(batch))
    }
    draining = false
    if (closing) {
      sqlite.close()
      port.close()
    }
  }

  function rotateAll(batch: WriterRequest[]): WriterAnswer[] {
    const answers = new Map<WriterRequest, WriterAnswer>()
    const runnable: WriterRequest[] = []
    const requests: RotationRequest[] = []
    for (const request of batch) {
      if (request.key !== undefined) {
        if (keys.size >= KEYS_KEPT) keys.delete(keys.keys().next().value as string)
        keys.set(request.kid, secretKeyOf(request.key))
      }
      const key = keys.get(request.kid)
      if (key === undefined) {
        answers.set(request, { id: request.id, failed: { message: `no key ${request.kid}` } })
        continue
      }
      runnable.push(request)
      const { hash, now, grant } = request
      requests.push({ hash, now, grant, signer: { kid: request.kid, key } })
    }
    let results: (SqliteRotated | undefined | Error)[]
    turn.takeBlocking()
    try {
      results = rotate.many(data.config, requests)
    } catch (error) {
      // The transaction as a whole failed (BEGIN, COMMIT, or SQLite rolled it back whole):
      // nothing of it was written.
      const failed = error instanceof Error ? error : new Error(String(error))
      results = runnable.map(() => failed)
    } finally {
      turn.giveBlocking()
    }
    for (const [i, request] of runnable.entries()) {
      const result = results[i]
      answers.set(
        request,
        result instanceof Error
          ? { id: request.id, failed: failureOf(result) }
          : { id: request.id, rotated: result },
      )
    }
    return batch.map((request) => answers.get(request)!)
  }
}

function failureOf(error: Error): { message: string; code?: string } {
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' ? { message: error.message, code } : { message: error.message }
}
