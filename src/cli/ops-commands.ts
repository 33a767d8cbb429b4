import { closeSync, existsSync, openSync, unlinkSync } from 'node:fs'
import { resolve } from 'node:path'
import SqliteDatabase from 'better-sqlite3'
import { findUserByEmail } from '../accounts/accounts.js'
import { normalizeEmail } from '../accounts/email.js'
import { exportAuditEvents } from '../audit/query.js'
import type { Config } from '../config/index.js'
import { keyFileBeside } from '../keys/key-encryption.js'
import { PRUNED_TABLES, prune } from '../retention/prune.js'
import type { Tessera } from '../tessera.js'
import { type CliIo, printError, printLine } from './io.js'

/**
 * The operator's commands for the data itself (README, "Audit log", "Storage and retention",
 * "Backups"): `tessera audit export`, `tessera prune`, `tessera backup`.
 */

/** The SQLite file `DATABASE_URL` names, resolved; undefined for PostgreSQL and `:memory:`. */
export function sqliteFile(config: Pick<Config, 'databaseUrl'>): string | undefined {
  if (!config.databaseUrl.startsWith('sqlite:')) return undefined
  const path = config.databaseUrl.slice('sqlite:'.length)
  return path === ':memory:' ? undefined : resolve(path)
}

/**
 * Why a command other than `serve` and `migrate` must not run: its SQLite database does not
 * exist. Opening it would create an empty database with a fresh signing key in whatever folder
 * the command ran from, and the command would then act on that instead of the server's data.
 */
export function missingDatabase(config: Pick<Config, 'databaseUrl'>): string | undefined {
  const file = sqliteFile(config)
  if (file === undefined || existsSync(file)) return undefined
  return (
    `No database at ${file} (DATABASE_URL=${config.databaseUrl}). Run this command where the ` +
    "server runs with the server's DATABASE_URL, or create the database with tessera migrate."
  )
}

/** A command-line time: an RFC 3339 date or date-time, or a duration ago (`30m`, `12h`, `7d`). */
export function parseTime(text: string, option: string, now: number): number {
  const ago = /^(\d{1,9})([mhdw])$/.exec(text.trim())
  if (ago !== null) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[ago[2] as 'm']
    return now - Number(ago[1]) * unit
  }
  const ms = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/i.test(
    text,
  )
    ? Date.parse(text)
    : Number.NaN
  if (!Number.isFinite(ms)) {
    throw new UsageError(
      `${option} must be a date or date-time (2026-01-31, 2026-01-31T12:00:00Z) or a time ago ` +
        '(30m, 12h, 7d)',
    )
  }
  return ms
}

/** A wrong argument: printed with the command's help, exit 2. */
export class UsageError extends Error {}

export interface AuditExportOptions {
  since?: string | undefined
  until?: string | undefined
  user?: string | undefined
  event?: string | undefined
}

/**
 * `tessera audit export --since T`: every matching event as one JSON object per line, oldest
 * first, read in batches (never the whole log in memory), for a SIEM. `--user` takes an email or
 * a user id; an email of a deleted account no longer matches (its events keep only the id).
 */
export async function auditExportCommand(
  t: Tessera,
  options: AuditExportOptions,
  io: CliIo,
): Promise<number> {
  if (options.since === undefined) throw new UsageError('--since is required')
  const now = t.clock()
  const since = parseTime(options.since, '--since', now)
  const until = options.until === undefined ? undefined : parseTime(options.until, '--until', now)
  let userId: string | undefined
  if (options.user !== undefined) {
    const given = options.user.trim()
    const user = given.includes('@')
      ? await findUserByEmail(t.db, normalizeEmail(given).normalized)
      : undefined
    if (given.includes('@') && user === undefined) {
      printError(io, `No user with email ${given} (a deleted account's events: pass its id)`)
      return 1
    }
    // A deleted account's events keep its id: an id that names no user still filters.
    userId = user?.id ?? given.toLowerCase()
  }
  let count = 0
  for await (const event of exportAuditEvents(t.db, {
    since,
    until,
    userId,
    event: options.event,
  })) {
    const line = `${JSON.stringify(event)}\n`
    // Written as it is read; a slow consumer (a pipe to a SIEM shipper) holds the export back
    // rather than letting it buffer.
    if (!io.stdout.write(line)) await new Promise((r) => io.stdout.once('drain', r))
    count++
  }
  printError(io, `${count} events`)
  return 0
}

/** `tessera prune`: one pass now, whatever PRUNE_INTERVAL; prints the rows deleted per table. */
export async function pruneCommand(t: Tessera, io: CliIo): Promise<number> {
  const pass = await prune({ ...t, prunedRows: t.metrics.prunedRows })
  if (pass.outcome === 'skipped') {
    printError(io, 'Another process is pruning this database now; nothing done.')
    return 0
  }
  for (const table of PRUNED_TABLES) {
    printLine(io, `${table.padEnd(22)} ${pass.deleted[table]}`)
  }
  return 0
}

/**
 * `tessera backup PATH`: a consistent copy of the SQLite database while the server serves,
 * through SQLite's online backup API (better-sqlite3's `backup`), which copies a snapshot and
 * lets writers go on. PATH must not exist; it is created 0600 (it holds password hashes).
 * PostgreSQL has its own tool for this, pg_dump.
 */
export async function backupCommand(config: Config, args: string[], io: CliIo): Promise<number> {
  const [target, ...extra] = args
  if (target === undefined || extra.length > 0) throw new UsageError('backup takes one PATH')
  const file = sqliteFile(config)
  if (file === undefined) {
    printError(
      io,
      'DATABASE_URL is PostgreSQL: back it up with pg_dump (README, "Backups"), e.g.\n' +
        '  pg_dump --format=custom --file=tessera.dump "$DATABASE_URL"',
    )
    return 1
  }
  const destination = resolve(target)
  if (existsSync(destination)) {
    printError(io, `${destination} exists; backup never overwrites a file`)
    return 1
  }
  // Created here, exclusively and private, so the copy is never readable by others.
  closeSync(openSync(destination, 'wx', 0o600))
  const source = new SqliteDatabase(file, { fileMustExist: true })
  try {
    source.pragma('busy_timeout = 5000')
    await source.backup(destination)
  } catch (error) {
    unlinkSync(destination)
    throw error
  } finally {
    source.close()
  }
  printLine(io, `Backed up ${file} to ${destination}`)
  if (config.keyEncryptionKey === undefined && config.keyEncryptionKeyFile === undefined) {
    printError(
      io,
      `The signing keys in it are encrypted with the key in ${keyFileBeside(file)}: ` +
        'keep a copy of that file too, apart from the backup.',
    )
  }
  return 0
}
