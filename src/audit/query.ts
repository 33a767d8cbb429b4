import type { Kysely, Selectable } from 'kysely'
import { type KeysetPosition, keysetPage, olderThanCursor } from '../db/keyset-cursor.js'
import type { AuditEventsTable, Database } from '../db/schema.js'

/**
 * Reading the audit log (README, "Audit log"): the admin route pages it newest first, the
 * server-host export streams it oldest first. Both order by (`at`, `id`) and continue from a
 * keyset cursor, never an offset, so rows written meanwhile cannot shift a page.
 */

export interface AuditFilter {
  userId?: string | undefined
  event?: string | undefined
  /** Epoch ms, inclusive. */
  since?: number | undefined
  /** Epoch ms, exclusive. */
  until?: number | undefined
}

/** One event as the API and the export show it; `detail` is the structured context, parsed. */
export interface AuditEventView {
  id: string
  at: string
  event: string
  user_id: string | null
  session_id: string | null
  ip: string | null
  detail: Record<string, unknown> | null
}

export interface AuditPage {
  events: AuditEventView[]
  /** Pass as `cursor` for the next (older) page; null when this page is the last. */
  next_cursor: string | null
}

export const AUDIT_PAGE_DEFAULT = 100
export const AUDIT_PAGE_MAX = 500

function filtered(db: Kysely<Database>, filter: AuditFilter) {
  let query = db.selectFrom('audit_events').selectAll()
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId)
  if (filter.event !== undefined) query = query.where('event', '=', filter.event)
  if (filter.since !== undefined) query = query.where('at', '>=', filter.since)
  if (filter.until !== undefined) query = query.where('at', '<', filter.until)
  return query
}

function toView(row: Selectable<AuditEventsTable>): AuditEventView {
  return {
    id: row.id,
    at: new Date(row.at).toISOString(),
    event: row.event,
    user_id: row.user_id,
    session_id: row.session_id,
    ip: row.ip,
    detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
  }
}

/**
 * One page of events matching `filter`, newest first, after `cursor` (older than it). An event
 * written while a client pages is newer than every page it has left to read, so the pages it
 * reads neither repeat nor skip an event.
 */
export async function listAuditEvents(
  db: Kysely<Database>,
  filter: AuditFilter,
  page: { cursor?: string | undefined; limit?: number | undefined } = {},
): Promise<AuditPage> {
  const limit = page.limit ?? AUDIT_PAGE_DEFAULT
  let query = filtered(db, filter)
  if (page.cursor !== undefined) query = query.where(olderThanCursor('at', page.cursor))
  const rows = await query
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute()
  const { items, nextCursor } = keysetPage(rows, limit, (row) => row.at)
  return { events: items.map(toView), next_cursor: nextCursor }
}

/**
 * Every event matching `filter`, oldest first, read in batches of `batch` rows so that an export
 * of a year of events never sits in memory at once (`tessera audit export`).
 */
export async function* exportAuditEvents(
  db: Kysely<Database>,
  filter: AuditFilter,
  batch = 1000,
): AsyncGenerator<AuditEventView> {
  let after: KeysetPosition | undefined
  for (;;) {
    let query = filtered(db, filter)
    if (after !== undefined) {
      const { at, id } = after
      query = query.where((eb) =>
        eb.or([eb('at', '>', at), eb.and([eb('at', '=', at), eb('id', '>', id)])]),
      )
    }
    const rows = await query.orderBy('at').orderBy('id').limit(batch).execute()
    for (const row of rows) yield toView(row)
    const last = rows.at(-1)
    if (rows.length < batch || last === undefined) return
    after = { at: last.at, id: last.id }
  }
}
