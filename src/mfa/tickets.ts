import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import { parseStoredAmr, storedAmr } from '../sessions/amr.js'
import type { AccessGrant } from '../tokens/grant.js'

/**
 * The MFA ticket (README, "Second factors"): what a first factor (a password, a federated
 * provider) earns an account with a second factor instead of a session. 256 random bits, stored
 * as SHA-256, bound to the user and to the credential version the password was checked against
 * (a password change meanwhile voids it: the session would be refused), single use, and valid
 * for MFA_TICKET_TTL_SECONDS. It is no session: it opens nothing until the second factor is
 * right.
 */
export const MFA_TICKET_TTL_SECONDS = 300
const PREFIX = 'tessera_mt_'
const PATTERN = /^tessera_mt_[A-Za-z0-9_-]{43}$/

function hashTicket(ticket: string): string {
  return createHash('sha256').update(ticket, 'utf8').digest('hex')
}

/** What the first factor proved, kept with the ticket until the second. */
export interface FirstFactor {
  userId: string
  /** `password` or the federated provider (the session's audit `method`). */
  method: string
  amr: readonly string[]
  /** The credential version the password was checked against; undefined for a federated one. */
  credentialVersion?: number | undefined
  /** An API login's grant, when it asked for one. */
  grant?: AccessGrant | undefined
}

export async function issueMfaTicket(
  t: { db: Kysely<Database>; clock: Clock },
  first: FirstFactor,
): Promise<string> {
  const ticket = PREFIX + randomBytes(32).toString('base64url')
  const now = t.clock()
  await t.db.deleteFrom('mfa_tickets').where('expires_at', '<', now).execute()
  await t.db
    .insertInto('mfa_tickets')
    .values({
      ticket_hash: hashTicket(ticket),
      user_id: first.userId,
      method: first.method,
      amr: storedAmr(first.amr) ?? '',
      credential_version: first.credentialVersion ?? null,
      audience: first.grant?.audience ?? null,
      scope: first.grant === undefined ? null : first.grant.scopes.join(' '),
      created_at: now,
      expires_at: now + MFA_TICKET_TTL_SECONDS * 1000,
      used_at: null,
    })
    .execute()
  return ticket
}

export interface OpenTicket extends FirstFactor {
  hash: string
}

function invalidTicket(): TesseraError {
  return new TesseraError(
    'invalid_mfa_ticket',
    'The MFA ticket is unknown, used or expired; sign in again',
  )
}

/** A live, unused ticket; unknown, spent and expired ones look alike. Spends nothing. */
export async function readMfaTicket(
  t: { db: Kysely<Database>; clock: Clock },
  ticket: string,
): Promise<OpenTicket> {
  if (!PATTERN.test(ticket)) throw invalidTicket()
  const hash = hashTicket(ticket)
  const row = await t.db
    .selectFrom('mfa_tickets')
    .selectAll()
    .where('ticket_hash', '=', hash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', t.clock())
    .executeTakeFirst()
  if (row === undefined) throw invalidTicket()
  return {
    hash,
    userId: row.user_id,
    method: row.method,
    amr: parseStoredAmr(row.amr) ?? [],
    credentialVersion: row.credential_version ?? undefined,
    grant:
      row.audience === null
        ? undefined
        : { audience: row.audience, scopes: (row.scope ?? '').split(' ').filter(Boolean) },
  }
}

/**
 * Spends the ticket in the transaction that opens the session (`openSession`'s `claim`): one
 * conditional UPDATE, so of two second steps with one ticket at most one opens a session.
 */
export async function spendMfaTicket(
  tx: Kysely<Database>,
  clock: Clock,
  ticket: OpenTicket,
): Promise<void> {
  const now = clock()
  const spent = await tx
    .updateTable('mfa_tickets')
    .set({ used_at: now })
    .where('ticket_hash', '=', ticket.hash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  if (spent.numUpdatedRows === 0n) throw invalidTicket()
}
