/**
 * The verifier's side of Tessera's revocation feed (docs/revocation.md, "Verifiers"): follows
 * `GET /v1/revocations/stream` (Server-Sent Events) or polls `GET /v1/revocations`, verifies every
 * document, and keeps the live entries in memory (`RevocationList`), so a token of a revoked
 * session, of a user revoked after the token was issued, or signed with a revoked key is refused
 * without a call to Tessera per request.
 *
 * While the feed cannot be reached the last state is kept (fail open) and reported as stale;
 * `failClosedAfterSeconds` makes the verifier refuse instead once it has had no fresh document
 * for that long. The stream reconnects with exponential backoff (1 s doubling to 30 s, jittered)
 * and resumes from its cursor (`Last-Event-ID`), reading what it missed with one pull per attempt.
 */
import { parsePasetoTime } from '../paseto/time.js'
import { TokenError } from './errors.js'
import { readBounded } from './key-set.js'
import {
  MAX_DOCUMENT_CHARS,
  type RevocationDocument,
  RevocationDocumentError,
  verifyRevocationDocument,
} from './revocation-document.js'
import { RevocationList } from './revocation-list.js'
import { createSseParser } from './sse.js'
import type { AccessTokenClaims, KeyResolver } from './token.js'

/** How a verifier follows the feed: Tessera's event stream, or a pull every `intervalMs`. */
export type RevocationFeedMode = { stream: true } | { poll: { intervalMs?: number } }

export type RevocationOptions = RevocationFeedMode & {
  /**
   * Tessera's `GET /v1/revocations`. Default: beside `keysUrl` (`.../v1/keys` becomes
   * `.../v1/revocations`); required with `keys` or `keySet`.
   */
  url?: string | URL
  /** `revocationStatus().stale` once the newest document is older than this. Default 60 s. */
  staleAfterSeconds?: number
  /**
   * Refuse every token (`RevocationsUnavailableError`, which `auth()` answers with 503) once no
   * document issued within this many seconds has been verified. Default: never (keep the last
   * state while the feed is unreachable).
   */
  failClosedAfterSeconds?: number
}

/** What `verifier.revocationStatus()` reports. */
export interface RevocationStatus {
  mode: 'stream' | 'poll'
  /** Epoch ms at which Tessera issued the newest document verified; undefined before the first. */
  lastSyncAt: number | undefined
  /** No document, or the newest is older than `staleAfterSeconds`. */
  stale: boolean
  /** Stream mode: an event stream is open now. */
  connected: boolean
  /** The cursor the next request resumes from. */
  cursor: number
  /** Revocation entries held in memory. */
  entries: number
  /** Why the last attempt to read the feed failed, until one succeeds (for logs). */
  lastError: string | undefined
}

/**
 * The verifier has had no fresh revocation document for `failClosedAfterSeconds`. Not a
 * `TokenError`: the token may be fine, so `auth()` answers 503 `service_unavailable`.
 */
export class RevocationsUnavailableError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RevocationsUnavailableError'
  }
}

export interface RevocationFeedOptions {
  url: URL
  mode: RevocationFeedMode
  resolveKey: KeyResolver
  issuer: string
  clockToleranceSeconds: number
  maxLifetimeSeconds: number
  now: () => number
  fetch: typeof fetch
  timeoutMs: number
  staleAfterSeconds?: number
  failClosedAfterSeconds?: number
}

export interface RevocationFeed {
  /**
   * Throws `TokenError` `revoked` for a revoked token, `RevocationsUnavailableError` when failing
   * closed. Before the first attempt to read the feed has settled it waits for it (at most the
   * fetch timeout), so a verifier that just started does not wave revoked tokens through.
   */
  check(claims: AccessTokenClaims, kid: string): Promise<void> | undefined
  status(): RevocationStatus
  close(): void
}

const DEFAULT_INTERVAL_MS = 5_000
const MIN_INTERVAL_MS = 100
const DEFAULT_STALE_AFTER_SECONDS = 60
/** Tessera sends a heartbeat every 15 s: three missed means the connection is dead. */
const STREAM_IDLE_MS = 45_000
const FIRST_RETRY_MS = 1_000
const MAX_RETRY_MS = 30_000
/** One pull reads at most this many pages (1000 entries each) before it waits its turn. */
const MAX_PAGES_PER_PULL = 1_000

function positive(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`revocations.${name} must be a positive number`)
  }
  return value
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error))

export function createRevocationFeed(o: RevocationFeedOptions): RevocationFeed {
  const streaming = 'stream' in o.mode && o.mode.stream === true
  if (!streaming && !('poll' in o.mode && typeof o.mode.poll === 'object')) {
    throw new TypeError('revocations needs { stream: true } or { poll: { intervalMs } }')
  }
  const intervalMs = streaming
    ? 0
    : Math.max(
        MIN_INTERVAL_MS,
        positive(
          'poll.intervalMs',
          (o.mode as { poll: { intervalMs?: number } }).poll.intervalMs,
        ) ?? DEFAULT_INTERVAL_MS,
      )
  const staleAfterMs =
    (positive('staleAfterSeconds', o.staleAfterSeconds) ??
      Math.max(DEFAULT_STALE_AFTER_SECONDS, (3 * intervalMs) / 1000)) * 1000
  const failClosedSeconds = positive('failClosedAfterSeconds', o.failClosedAfterSeconds)
  const failClosedMs = failClosedSeconds === undefined ? undefined : failClosedSeconds * 1000
  const streamUrl = new URL(o.url)
  streamUrl.pathname = `${streamUrl.pathname.replace(/\/+$/, '')}/stream`

  const list = new RevocationList()
  // A revoked key may have leaked: what it signs, feed documents included, is not believed.
  const resolveUnrevokedKey: KeyResolver = (kid) =>
    list.hasRevokedKey(kid) ? undefined : o.resolveKey(kid)
  const createdAt = o.now()
  let cursor = 0
  let lastSyncAt: number | undefined
  let lastError: string | undefined
  let connected = false
  let failures = 0
  let closed = false
  /** Aborts a pull in flight on close(). */
  const closing = new AbortController()
  let stream: AbortController | undefined
  let sleeping: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined

  let settled = false
  let settle: () => void = () => {}
  const firstAttempt = new Promise<void>((resolve) => {
    settle = () => {
      settled = true
      resolve()
    }
  })
  let firstWait: Promise<void> | undefined

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        sleeping = undefined
        resolve()
      }
      const timer = setTimeout(wake, ms)
      timer.unref?.()
      sleeping = { timer, wake }
    })
  }

  /** Verifies a document that answers a request made at cursor `requested`, and applies it. */
  async function apply(token: unknown, requested: number): Promise<RevocationDocument> {
    if (typeof token !== 'string') throw new RevocationDocumentError('no document')
    const doc = await verifyRevocationDocument(token, resolveUnrevokedKey, {
      issuer: o.issuer,
      clockToleranceSeconds: o.clockToleranceSeconds,
      now: o.now,
    })
    // Entries between our cursor and the document's start would be lost (a dropped event).
    if (doc.after > requested) {
      throw new RevocationDocumentError(`document starts at ${doc.after}, after ${requested}`)
    }
    list.add(doc.entries, Math.min(o.maxLifetimeSeconds, doc.ttl) + o.clockToleranceSeconds)
    list.prune(Math.floor(o.now() / 1000))
    // A document that starts below the cursor covers it too; one whose `next` is below it comes
    // from a log that was restored from a backup, whose new entries follow that `next`.
    cursor = doc.next
    lastSyncAt = Math.max(lastSyncAt ?? Number.NEGATIVE_INFINITY, doc.issuedAt)
    lastError = undefined
    // The first check waits for the whole backlog, not just its first page.
    if (!doc.more) settle()
    return doc
  }

  async function pull(): Promise<void> {
    for (let page = 0; page < MAX_PAGES_PER_PULL; page++) {
      const requested = cursor
      const url = new URL(o.url)
      url.searchParams.set('after', String(requested))
      const res = await o.fetch(url, {
        headers: { accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.any([closing.signal, AbortSignal.timeout(o.timeoutMs)]),
      })
      if (res.status !== 200) {
        await res.body?.cancel()
        throw new Error(`revocation feed answered ${res.status}`)
      }
      const text = await readBounded(res, MAX_DOCUMENT_CHARS + 1024, 'revocation feed response')
      const doc = await apply(
        (JSON.parse(text) as { document?: unknown } | null)?.document,
        requested,
      )
      if (!doc.more || closed) return
    }
  }

  async function follow(): Promise<void> {
    const controller = new AbortController()
    stream = controller
    let idle: ReturnType<typeof setTimeout> | undefined
    const keepAlive = () => {
      if (idle !== undefined) clearTimeout(idle)
      idle = setTimeout(() => controller.abort(new Error('event stream idle')), STREAM_IDLE_MS)
      idle.unref?.()
    }
    try {
      keepAlive()
      const url = new URL(streamUrl)
      url.searchParams.set('after', String(cursor))
      const res = await o.fetch(url, {
        headers: { accept: 'text/event-stream', 'last-event-id': String(cursor) },
        redirect: 'manual',
        signal: controller.signal,
      })
      const type = res.headers.get('content-type') ?? ''
      if (res.status !== 200 || !/^text\/event-stream\s*(;|$)/i.test(type) || res.body === null) {
        await res.body?.cancel()
        throw new Error(`revocation stream answered ${res.status}`)
      }
      connected = true
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      const parser = createSseParser(MAX_DOCUMENT_CHARS + 64)
      for (;;) {
        const { done, value } = await reader.read()
        if (done || closed) return
        keepAlive()
        for (const event of parser.push(value)) {
          if (event.event !== 'revocations') continue
          await apply(event.data, cursor)
          failures = 0
        }
      }
    } finally {
      connected = false
      if (idle !== undefined) clearTimeout(idle)
      controller.abort()
      if (stream === controller) stream = undefined
    }
  }

  async function run(): Promise<void> {
    while (!closed) {
      if (!streaming) {
        try {
          await pull()
        } catch (error) {
          lastError = describe(error)
        }
        settle()
        if (!closed) await sleep(intervalMs)
        continue
      }
      try {
        await follow()
      } catch (error) {
        if (!closed) lastError = describe(error)
      }
      if (closed) break
      failures++
      // While the stream is down (or full: 503), a pull keeps the state fresh.
      try {
        await pull()
      } catch (error) {
        lastError = describe(error)
      }
      settle()
      const backoff = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (failures - 1))
      if (!closed) await sleep(backoff * (0.5 + Math.random() / 2))
    }
  }

  void run()

  return {
    check(claims, kid) {
      if (!settled) {
        firstWait ??= Promise.race([
          firstAttempt,
          new Promise<void>((resolve) => setTimeout(resolve, o.timeoutMs)),
        ]).then(() => settle())
        return firstWait.then(() => enforce(claims, kid))
      }
      enforce(claims, kid)
      return undefined
    },
    status() {
      return {
        mode: streaming ? 'stream' : 'poll',
        lastSyncAt,
        stale: lastSyncAt === undefined || o.now() - lastSyncAt > staleAfterMs,
        connected,
        cursor,
        entries: list.size,
        lastError,
      }
    },
    close() {
      closed = true
      closing.abort()
      stream?.abort()
      if (sleeping !== undefined) {
        clearTimeout(sleeping.timer)
        sleeping.wake()
      }
    },
  }

  function enforce(claims: AccessTokenClaims, kid: string): void {
    if (failClosedMs !== undefined && o.now() - (lastSyncAt ?? createdAt) > failClosedMs) {
      throw new RevocationsUnavailableError(
        `no revocation feed document for over ${failClosedSeconds} s`,
      )
    }
    const iat = Math.floor((parsePasetoTime(claims.iat) ?? 0) / 1000)
    if (list.isRevoked(claims.sid, claims.sub, iat, kid)) {
      throw new TokenError('revoked', 'the token has been revoked')
    }
  }
}
