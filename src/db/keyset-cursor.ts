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
