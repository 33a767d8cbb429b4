import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { SHARE_ENV, Worker } from 'node:worker_threads'
import type { WriterTurn } from '../db/writer-turn.js'
import type { WriterAnswer, WriterData, WriterRequest } from './refresh-writer.js'
import type { RotationConfig, RotationRequest, SqliteRotated } from './sqlite-rotation.js'

/**
 * The main thread's side of the refresh writer thread (refresh-writer.ts; docs/performance.md,
 * "Refresh on SQLite: the writer thread"): starts it, hands it presentations and the signing
 * keys they need, and stops it when refreshes stop coming.
 */
export interface RefreshWriterThread {
  /** True once the thread has opened its connection and until it is told to stop. */
  readonly serving: boolean
  /** Rotates on the thread: as `rotateOnSqlite` answers, or rejects when the thread failed. */
  rotate(request: RotationRequest): Promise<SqliteRotated | undefined>
  /** Answers what it was given, then closes its connection and ends. */
  stop(): Promise<void>
}

/** How long the thread runs on without a refresh before it stops (its memory is given back). */
const WRITER_QUIET_MS = 5000
/** Signing keys the thread keeps by kid, the same on both sides (refresh-writer.ts). */
const KEYS_KEPT = 4

export function startRefreshWriterThread(
  file: { path: string; turn: WriterTurn },
  config: RotationConfig,
  /** Called once the thread has ended: with what failed, when it did not end as told. */
  onEnd: (failure: Error | undefined) => void,
): RefreshWriterThread {
  const data: WriterData = { path: file.path, turn: file.turn.shared, config }
  const worker = writerWorker(data)
  const pending = new Map<
    number,
    { resolve: (rotated: SqliteRotated | undefined) => void; reject: (error: Error) => void }
  >()
  const keysSent: string[] = []
  let nextId = 0
  let ready = false
  let stopping: Promise<void> | undefined
  let lastUse = performance.now()
  let failure: Error | undefined

  const failAll = (error: Error) => {
    for (const each of pending.values()) each.reject(error)
    pending.clear()
  }
  worker.on('message', (message: WriterAnswer[] | 'ready') => {
    if (message === 'ready') {
      ready = true
      // Its start is not idleness: the quiet time counts from here.
      lastUse = performance.now()
      return
    }
    for (const answer of message) {
      const waiting = pending.get(answer.id)
      pending.delete(answer.id)
      if (waiting === undefined) continue
      if ('failed' in answer) waiting.reject(errorOf(answer.failed))
      else waiting.resolve(answer.rotated)
    }
  })
  // The presentations of one turn of the event loop go in one message (a message each way costs
  // both threads more than the structured copy of its contents).
  let outgoing: WriterRequest[] = []
  let flushing = false
  const flush = () => {
    flushing = false
    if (outgoing.length === 0) return
    worker.postMessage(outgoing)
    outgoing = []
  }
  // A thread that failed (its connection would not open, the file is gone) fails what it was
  // given; the next refreshes run on the main thread, which starts a new one when they pick up.
  worker.on('error', (error) => {
    failure = error
    ready = false
    failAll(error)
  })
  worker.on('exit', () => {
    clearInterval(idle)
    failAll(new Error('the refresh writer thread ended'))
    // Ended by V8 inside a transaction (out of memory), it gave no turn back.
    void file.turn.recoverAbandoned()
    onEnd(failure)
  })
  // Like the checkpointer, it keeps no process alive that has nothing else to do.
  worker.unref()
  const idle = setInterval(() => {
    if (pending.size === 0 && performance.now() - lastUse > WRITER_QUIET_MS) void thread.stop()
  }, 1000)
  idle.unref()

  const thread: RefreshWriterThread = {
    get serving() {
      return ready && stopping === undefined
    },
    rotate(request) {
      lastUse = performance.now()
      const id = nextId++
      const { kid, key } = request.signer
      const message: WriterRequest = {
        id,
        hash: request.hash,
        now: request.now,
        kid,
        grant: request.grant,
      }
      if (!keysSent.includes(kid)) {
        if (keysSent.length >= KEYS_KEPT) keysSent.shift()
        keysSent.push(kid)
        message.key = key.keyObject
      }
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject })
        outgoing.push(message)
        if (!flushing) {
          flushing = true
          setImmediate(flush)
        }
      })
    },
    stop() {
      stopping ??= new Promise<void>((done) => {
        if (worker.threadId === -1) return done()
        worker.once('exit', () => done())
        // Held until it has closed its connection (refresh-writer.ts answers what came first).
        worker.ref()
        // What it was given first, then the word to close (messages arrive in order).
        flush()
        worker.postMessage('close')
      })
      return stopping
    },
  }
  return thread
}

/**
 * The thread on refresh-writer's code as this process runs it: the TypeScript source under the
 * tests (through tsx, a development dependency; the suite runs from the project's folder), else
 * the compiled file beside this one (tsc's output), or beside the bundle's entry when this code
 * sits in one of the bundle's chunks (tools/bundle.mjs names it so).
 */
function writerWorker(data: WriterData): Worker {
  const options = { workerData: data, env: SHARE_ENV, stdin: false } as const
  const here = import.meta.url
  if (here.endsWith('.ts')) {
    const entry = JSON.stringify(new URL('./refresh-writer.ts', here).href)
    const source = `import('tsx/esm/api').then((tsx) => (tsx.register(), import(${entry})))`
    return new Worker(source, { ...options, eval: true })
  }
  const beside = fileURLToPath(new URL('./refresh-writer.js', here))
  const entry = existsSync(beside) ? beside : fileURLToPath(new URL('../refresh-writer.js', here))
  return new Worker(entry, options)
}

/** The thread's error on this side, with the code that tells a busy database (db/errors.ts). */
function errorOf(failed: { message: string; code?: string }): Error {
  const error = new Error(failed.message) as Error & { code?: string }
  if (failed.code !== undefined) error.code = failed.code
  return error
}
