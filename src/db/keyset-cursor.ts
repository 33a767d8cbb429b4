import { type Expression, type SqlBool, sql } from 'kysely'
import { TesseraError } from '../errors.js'

/** A row's place in a newest-first list: its time and its id, the tie-breaker within one ms. */
export interface KeysetPosition {
  at: number
  id: string
}

/**
 * The cursor of a page of a keyset-paginated list (the admin's users and audit events): the last
 * row's position, opaque to clients (base64url JSON). Keyset pages over (time, id) neither skip
 * nor repeat a row while rows are inserted, which an offset would.
 */
export function encodeKeysetCursor(p: KeysetPosition): string {
  return Buffer.from(JSON.stringify([p.at, p.id])).toString('base64url')
}

/** A cursor this server handed out, or 400 `invalid_cursor`. */
export function decodeKeysetCursor(cursor: string): KeysetPosition {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      Number.isSafeInteger(value[0]) &&
      typeof value[1] === 'string' &&
      value[1].length <= 64
    ) {
      return { at: value[0] as number, id: value[1] }
    }
  } catch {}
  throw new TesseraError('invalid_cursor', 'cursor: not a cursor this list handed out', {
    errors: [{ field: 'cursor', message: 'not a cursor this list handed out' }],
  })
}

/**
 * The rows after `cursor` in a list ordered by (`column`, id) newest first: older than its
 * position, or as old with a smaller id. 400 `invalid_cursor` for a cursor not handed out here.
 */
export function olderThanCursor(column: string, cursor: string): Expression<SqlBool> {
  const after = decodeKeysetCursor(cursor)
  const [at, id] = [sql.ref(column), sql.ref('id')]
  return sql<SqlBool>`(${at} < ${after.at} or (${at} = ${after.at} and ${id} < ${after.id}))`
}

/**
 * One page of a list fetched with `limit + 1` rows: the first `limit`, and the cursor of the next
 * page (null when this one is the last). `at` is a row's time, as the list orders by it.
 */
export function keysetPage<Row extends { id: string }>(
  rows: Row[],
  limit: number,
  at: (row: Row) => number | string,
): { items: Row[]; nextCursor: string | null } {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return {
    items,
    nextCursor:
      rows.length > limit && last !== undefined
        ? encodeKeysetCursor({ at: Number(at(last)), id: last.id })
        : null,
  }
}
