import { DOCUMENT_ENTRIES, type DocumentDeps, pageOf, signFeedPage } from './feed.js'
import type { LiveRevocations } from './live.js'

export type StreamItem =
  /** A signed feed document; `id` is its `next` cursor (the SSE event id to resume from). */
  | { kind: 'document'; id: number; document: string }
  /** Nothing new: a comment line keeps the connection open. */
  | { kind: 'heartbeat' }

export interface StreamDeps extends DocumentDeps {
  revocations: LiveRevocations
}

/**
 * One client's `GET /v1/revocations/stream` (docs/revocation.md, "The feed"): from the cursor
 * `after` on, every entry of this process's live log, as signed documents of up to 1000 entries
 * each, in order and without a gap (each document's `after` is the previous one's `next`).
 *
 * - The first item is a document at once: everything committed before the stream opened (the
 *   log is read again first), or an empty checkpoint, so the client knows where it stands.
 * - Afterwards, whenever entries arrive, a document with them; when nothing happens, a heartbeat
 *   every `live.heartbeatMs` and a signed empty checkpoint every second heartbeat, dated by when
 *   this process last read the log (`iat`): a verifier can tell a quiet feed from a dead one, and
 *   a replica that cannot read its database sends documents that expire.
 * - A cursor beyond the log's head means the log was restored from an older backup: the stream
 *   starts over from 0 (the client follows `next`).
 * - Entries are read from memory when the client is ready for them: a slow client falls behind
 *   without anything piling up for it.
 *
 * Ends when the process closes its live log or `signal` aborts.
 */
export async function* revocationStream(
  deps: StreamDeps,
  after: number,
  signal: AbortSignal,
): AsyncGenerator<StreamItem> {
  const live = deps.revocations
  let cursor = after
  try {
    await live.sync()
  } catch {
    // The database is unreachable: serve what this process has, dated when it last read the log.
  }
  if (cursor > live.head()) cursor = 0
  const beat = live.heartbeatMs
  let lastDocument = Number.NEGATIVE_INFINITY
  let lastBeat = performance.now()
  while (!live.closed && !signal.aborted) {
    const entries = live.entriesAfter(cursor, DOCUMENT_ENTRIES + 1)
    const now = performance.now()
    if (entries.length > 0 || now - lastDocument >= 2 * beat) {
      const page = pageOf(entries, cursor, live.syncedAt())
      const document = await signFeedPage(deps, page)
      cursor = page.next
      lastDocument = lastBeat = performance.now()
      yield { kind: 'document', id: cursor, document }
      continue
    }
    if (now - lastBeat >= beat) {
      lastBeat = now
      yield { kind: 'heartbeat' }
      continue
    }
    await nextEvent(
      live,
      Math.min(beat - (now - lastBeat), 2 * beat - (now - lastDocument)),
      signal,
    )
  }
}

/** Resolves on new entries, after `ms`, or on abort, whichever comes first. */
async function nextEvent(live: LiveRevocations, ms: number, signal: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    await Promise.race([
      live.changed(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(1, ms))
        onAbort = resolve
        signal.addEventListener('abort', onAbort, { once: true })
      }),
    ])
  } finally {
    clearTimeout(timer)
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
