import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database } from '../db/schema.js'

/**
 * Requests that mail an address whether or not it has an account, and must not tell which by
 * their answer's time (docs/security.md, "Passwords and login"): the request path writes one
 * `mail_requests` row of one shape and answers; the account's work is done after the answer by
 * the server's background pass (src/accounts/mail-request-pass.ts).
 */
export type MailRequestKind = 'password_reset' | 'verify_email'

export interface MailRequest {
  kind: MailRequestKind
  /** The address as the requester typed it (trimmed). */
  email: string
  email_normalized: string
  /** The requester's address, for the audit event the resolution writes. */
  ip: string | null
}

/** Queues one request: the whole of what the request path does after its budgets. */
export async function queueMailRequest(
  db: Kysely<Database>,
  clock: Clock,
  request: MailRequest,
): Promise<void> {
  await db
    .insertInto('mail_requests')
    .values({ id: randomUUID(), ...request, created_at: clock() })
    .execute()
}

/** Where a pass has got to in the queue: the last request it looked at. */
export interface MailRequestCursor {
  created_at: number
  id: string
}

/**
 * Up to `limit` waiting requests, oldest first (ties by id), after `after` when given: a pass
 * walks the queue with it, so a request that failed is passed over rather than met again.
 */
export async function pendingMailRequests(
  db: Kysely<Database>,
  limit: number,
  after?: MailRequestCursor,
): Promise<MailRequestCursor[]> {
  let query = db
    .selectFrom('mail_requests')
    .select(['created_at', 'id'])
    .orderBy('created_at')
    .orderBy('id')
    .limit(limit)
  if (after !== undefined) {
    query = query.where((eb) =>
      eb.or([
        eb('created_at', '>', after.created_at),
        eb.and([eb('created_at', '=', after.created_at), eb('id', '>', after.id)]),
      ]),
    )
  }
  const rows = await query.execute()
  return rows.map((r) => ({ created_at: Number(r.created_at), id: r.id }))
}

/**
 * Takes the request `id` inside the caller's transaction by deleting its row: of two replicas'
 * passes only one deletes it (the other waits for the row, then finds none), and a failure later
 * in the transaction puts it back. Undefined when another pass took it.
 */
export async function takeMailRequest(
  tx: Kysely<Database>,
  id: string,
): Promise<MailRequest | undefined> {
  const row = await tx
    .deleteFrom('mail_requests')
    .where('id', '=', id)
    .returning(['kind', 'email', 'email_normalized', 'ip'])
    .executeTakeFirst()
  return row === undefined ? undefined : { ...row, kind: row.kind as MailRequestKind }
}
