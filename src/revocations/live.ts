import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { DatabaseClient } from '../db/connect.js'
import { type Listener, listen } from '../db/notify.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { Logger } from '../logger.js'
import {
  pruneRevocations,
  REVOCATIONS_CHANNEL,
  type RevocationEntry,
  readRevocations,
  revocationRetentionMs,
} from './log.js'

/**
 * This process's copy of the live revocation log (docs/revocation.md, "Delivery across
 * replicas"): `/v1/authz` checks tokens against it without a database round trip, and the event
 * streams of this process serve from it. It holds the entries younger than the retention and
 * learns of new ones
 * - on PostgreSQL by LISTEN/NOTIFY (`REVOCATION_NOTIFY`, on by default): each revoking transaction
 *   notifies at commit and every replica reads the rows after its cursor at once; a poll every
 *   SAFETY_POLL_MS covers notifications lost while the listening connection was down;
 * - otherwise by polling every `REVOCATION_POLL_MS`: always on SQLite, where other processes on the
 *   same file (`tessera user disable`) write too, and an in-process signal would miss them.
 */
export interface LiveRevocations {
  /** Reads the whole live log and starts following it. */
  start(): Promise<void>
  /** Stops following; open streams end (`changed()` resolves, `closed` is true). */
  close(): Promise<void>
  readonly closed: boolean
  /** Reads what was added since the last read (concurrent calls share one read). */
  sync(): Promise<void>
  /** Whether the log revokes this token: its session, its user before `iat` (ms), or its key. */
  isRevoked(token: { sid: string; sub: string; iat: number; kid: string }): boolean
  /** Entries with a cursor above `after`, oldest first, at most `limit`. */
  entriesAfter(after: number, limit: number): RevocationEntry[]
  /** Resolves when entries were added, or on close. */
  changed(): Promise<void>
  /** Clock time of the last successful read: the log is known to be complete up to then. */
  syncedAt(): number
  /** Entries held. */
  size(): number
  /** The highest cursor read. */
  head(): number
  /** Milliseconds between an open stream's heartbeats (a signed checkpoint every second one). */
  readonly heartbeatMs: number
  /**
   * Takes one of the `REVOCATION_STREAM_MAX_CLIENTS` stream slots and returns its release;
   * throws 503 `service_unavailable` when all are taken.
   */
  openStream(): () => void
  /** Streams open now. */
  streams(): number
}

export interface LiveRevocationsDeps {
  db: Kysely<Database>
  client: DatabaseClient
  clock: Clock
  config: Pick<Config, 'accessTokenTtl' | 'jobTokenMaxTtl' | 'keysMaxAge' | 'revocations'>
  logger: Pick<Logger, 'warn' | 'info'>
  /** Default 15 s; only tests shorten it. */
  heartbeatMs?: number
}

/** With notifications on, a poll this often catches what a lost notification would have said. */
const SAFETY_POLL_MS = 5_000
/** Old rows are deleted from the table at most this often (by clock), by whichever replica. */
const PRUNE_EVERY_MS = 60_000
const READ_PAGE = 1000
/** How long `close()` waits for open streams to end before it lets the server close. */
const STREAMS_CLOSE_MS = 2_000
/** Comment lines on an idle stream keep proxies and the client's idle timer from closing it. */
const HEARTBEAT_MS = 15_000
/** Retry-After of a refused stream: long enough for the client to poll once meanwhile. */
const STREAM_RETRY_AFTER_SECONDS = 5

export function createLiveRevocations(deps: LiveRevocationsDeps): LiveRevocations {
  const { notify, pollMs, streamMaxClients } = deps.config.revocations
  const retentionMs = revocationRetentionMs(deps.config)
  /** Sorted by cursor; entries before `first` are pruned (compacted now and then). */
  let entries: RevocationEntry[] = []
  let first = 0
  let head = 0
  const sessions = new Map<string, number>()
  const users = new Map<string, number>()
  const keys = new Map<string, number>()
  let lastSync = Number.NEGATIVE_INFINITY
  let lastPrune = Number.NEGATIVE_INFINITY
  let failing = false
  let closed = false
  let openStreams = 0
  let timer: NodeJS.Timeout | undefined
  let listener: Listener | undefined
  let reading: Promise<void> | undefined
  let readAgain = false
  let wake: () => void = () => {}
  let change = new Promise<void>((resolve) => {
    wake = resolve
  })

  function announce(): void {
    const resolve = wake
    change = new Promise<void>((r) => {
      wake = r
    })
    resolve()
  }

  function add(entry: RevocationEntry): void {
    entries.push(entry)
    head = entry.seq
    if (entry.kind === 'session') sessions.set(entry.subject, entry.at)
    else if (entry.kind === 'user')
      users.set(entry.subject, Math.max(entry.at, users.get(entry.subject) ?? 0))
    else keys.set(entry.subject, entry.at)
  }

  function forget(entry: RevocationEntry): void {
    const map = entry.kind === 'session' ? sessions : entry.kind === 'user' ? users : keys
    // A later entry for the same subject (a user disabled twice) keeps it.
    if (map.get(entry.subject) === entry.at) map.delete(entry.subject)
  }

  function pruneMemory(now: number): void {
    const cutoff = now - retentionMs
    while (first < entries.length && entries[first]!.at < cutoff) forget(entries[first++]!)
    if (first > 1024 && first * 2 > entries.length) {
      entries = entries.slice(first)
      first = 0
    }
  }

  async function readNew(): Promise<void> {
    const now = deps.clock()
    let added = false
    for (;;) {
      const rows = await readRevocations(deps.db, head, READ_PAGE)
      for (const row of rows) add(row)
      added ||= rows.length > 0
      if (rows.length < READ_PAGE) break
    }
    lastSync = now
    pruneMemory(now)
    if (added) announce()
    if (now - lastPrune >= PRUNE_EVERY_MS) {
      lastPrune = now
      await pruneRevocations(deps.db, deps.clock, deps.config)
    }
  }

  function sync(): Promise<void> {
    if (reading !== undefined) {
      // The read in flight may have begun before the commit that asked for this one.
      readAgain = true
      return reading
    }
    reading = (async () => {
      try {
        do {
          readAgain = false
          await readNew()
        } while (readAgain && !closed)
      } finally {
        reading = undefined
      }
    })()
    return reading
  }

  function syncInBackground(): void {
    sync().then(
      () => {
        if (failing) deps.logger.info('revocation log readable again')
        failing = false
      },
      (error: unknown) => {
        if (!failing) {
          deps.logger.warn(
            { message: error instanceof Error ? error.message : String(error) },
            'cannot read the revocation log; keeping the last state',
          )
        }
        failing = true
      },
    )
  }

  return {
    async start() {
      await sync()
      if (notify) {
        listener = await listen(deps.client, REVOCATIONS_CHANNEL, {
          onNotify: syncInBackground,
          onConnect: syncInBackground,
          logger: deps.logger,
        })
      }
      const period = listener === undefined ? pollMs : SAFETY_POLL_MS
      timer = setInterval(syncInBackground, period)
      timer.unref()
    },
    async close() {
      if (closed) return
      closed = true
      if (timer !== undefined) clearInterval(timer)
      announce()
      await listener?.close()
      const deadline = Date.now() + STREAMS_CLOSE_MS
      while (openStreams > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      await reading?.catch(() => {})
    },
    get closed() {
      return closed
    },
    sync,
    isRevoked(token) {
      if (sessions.size > 0 && sessions.has(token.sid)) return true
      if (users.size > 0) {
        const notBefore = users.get(token.sub)
        if (notBefore !== undefined && token.iat < notBefore) return true
      }
      return keys.size > 0 && keys.has(token.kid)
    },
    entriesAfter(after, limit) {
      // Binary search for the first entry above `after`.
      let lo = first
      let hi = entries.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (entries[mid]!.seq <= after) lo = mid + 1
        else hi = mid
      }
      return entries.slice(lo, lo + limit)
    },
    changed: () => change,
    syncedAt: () => lastSync,
    size: () => entries.length - first,
    head: () => head,
    heartbeatMs: deps.heartbeatMs ?? HEARTBEAT_MS,
    openStream() {
      if (closed || openStreams >= streamMaxClients) {
        throw new TesseraError(
          'service_unavailable',
          'Every revocation stream slot of this server is taken; ' +
            'poll GET /v1/revocations meanwhile',
          { retryAfter: STREAM_RETRY_AFTER_SECONDS },
        )
      }
      openStreams++
      let released = false
      return () => {
        if (!released) openStreams--
        released = true
      }
    },
    streams: () => openStreams,
  }
}
