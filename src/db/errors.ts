/** True for a unique-constraint violation on either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const code = (error as { code?: unknown }).code
  // better-sqlite3 reports SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY; PostgreSQL SQLSTATE 23505.
  return (
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    code === '23505'
  )
}

/** Socket-level failures reaching the database (node:net error codes). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])

/**
 * SQLSTATEs meaning "the server is going away or not taking connections": admin_shutdown,
 * crash_shutdown, cannot_connect_now (starting up or shutting down), too_many_connections.
 * Class 08 (connection exceptions) is matched by prefix.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300'])

/**
 * pg reports a lost or never-made connection with plain `Error`s that carry no code; these are
 * the messages of the installed `pg`/`pg-pool` (client.js, pg-pool/index.js).
 */
const UNAVAILABLE_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect$/,
  /is not queryable$/,
  /^Client was closed/,
]

/**
 * True when `error` says the database cannot be reached right now, rather than that the request
 * or the code is wrong: the client should retry later (503, README "Database outages"). Follows
 * `cause` chains, since a driver error may arrive wrapped. SQLite's SQLITE_BUSY only surfaces
 * once `busy_timeout` (5 s) has passed, so it means "the writer is held elsewhere for too long".
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 5; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown }
    if (typeof code === 'string') {
      if (
        NETWORK_CODES.has(code) ||
        UNAVAILABLE_SQLSTATES.has(code) ||
        /^08[0-9A-Z]{3}$/.test(code)
      )
        return true
      if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_')) return true
    }
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((m) => m.test(message)))
      return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}

/** The error's code (SQLSTATE, node:net or SQLite), for log lines that must not carry a stack. */
export function databaseErrorCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}
