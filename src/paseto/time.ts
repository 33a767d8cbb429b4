/**
 * The one date-time form Tessera writes and accepts in `exp`, `nbf` and `iat`: RFC 3339 in UTC
 * with `T` and `Z`, whole seconds (`2026-05-01T12:00:00Z`). PASETO requires RFC 3339 strings; the
 * narrower form leaves no room for offsets, fractions or lower-case letters that parsers read
 * differently.
 */
const PASETO_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/

/**
 * The last two seconds formatted: every token signs `iat`, `nbf` and `exp`, of which `iat` and
 * `nbf` are the same second and all three repeat from one token to the next under load (a
 * `Date`, `toISOString` and a regex per call were about 1 % of a refresh, docs/performance.md).
 */
const recent: [number, string][] = [
  [Number.NaN, ''],
  [Number.NaN, ''],
]

/** Formats a time in milliseconds as `YYYY-MM-DDTHH:MM:SSZ`, truncated to the second. */
export function formatPasetoTime(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError('time must be a finite number of milliseconds')
  const second = Math.floor(ms / 1000)
  for (const [cached, text] of recent) if (cached === second) return text
  const text = new Date(second * 1000).toISOString().replace('.000Z', 'Z')
  // Years outside 0000-9999 come out as ±YYYYYY, which is not RFC 3339.
  if (!PASETO_TIME_PATTERN.test(text)) throw new RangeError('time is outside years 0000-9999')
  recent.pop()
  recent.unshift([second, text])
  return text
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

/** The decimal number in `text[start, start + count)`, or -1 if any character is not a digit. */
function digits(text: string, start: number, count: number): number {
  let value = 0
  for (let i = start; i < start + count; i++) {
    const digit = text.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return -1
    value = value * 10 + digit
  }
  return value
}

/**
 * Parses a `YYYY-MM-DDTHH:MM:SSZ` string to milliseconds, or returns undefined if the string is not
 * exactly that form or names an impossible date or time (February 30, hour 24, second 60: leap
 * seconds are not accepted). Runs three times per verification, hence no regex or slicing.
 */
export function parsePasetoTime(text: string): number | undefined {
  if (
    text.length !== 20 ||
    text[4] !== '-' ||
    text[7] !== '-' ||
    text[10] !== 'T' ||
    text[13] !== ':' ||
    text[16] !== ':' ||
    text[19] !== 'Z'
  ) {
    return undefined
  }
  const year = digits(text, 0, 4)
  const month = digits(text, 5, 2)
  const day = digits(text, 8, 2)
  const hour = digits(text, 11, 2)
  const minute = digits(text, 14, 2)
  const second = digits(text, 17, 2)
  if (year < 0 || hour < 0 || minute < 0 || second < 0) return undefined
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined
  if (hour > 23 || minute > 59 || second > 59) return undefined
  if (year >= 100) return Date.UTC(year, month - 1, day, hour, minute, second)
  // Date.UTC reads years 0-99 as 1900-1999.
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, 0)
  return date.getTime()
}
