import { randomBytes, randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database } from '../db/schema.js'
import type { MailTemplateName } from './templates/index.js'

export type { MailTemplateName }

export interface QueuedMail {
  to: string
  template: MailTemplateName
  data: Record<string, string>
}

/**
 * Queues one mail: a row of `mail_queue`, written with the caller's transaction, so the mail
 * exists iff the change that asks for it commits. The server's sender (src/mail/sender.ts) sends
 * it soon after; nothing here waits for the mail server (README, "Mail").
 */
export async function enqueueMail(
  db: Kysely<Database> | Transaction<Database>,
  clock: Clock,
  message: QueuedMail,
): Promise<void> {
  const now = clock()
  await db
    .insertInto('mail_queue')
    .values({
      id: randomUUID(),
      recipient: message.to,
      template: message.template,
      data: JSON.stringify(message.data),
      created_at: now,
      next_attempt_at: now,
      claim: null,
      claimed_until: null,
    })
    .execute()
}

/**
 * How long a claimed row is its sender's: longer than one attempt can take (the transport's
 * timeouts, src/mail/transport.ts), so a row is sent twice only when its sender died mid-send.
 */
export const CLAIM_MS = 120_000
/** Attempts before a mail is given up (about five hours of retrying: `retryDelayMs`). */
export const MAX_ATTEMPTS = 15
const FIRST_RETRY_MS = 2_000
const LONGEST_RETRY_MS = 3_600_000

/** The wait after the `attempts`-th failure: doubling from 2 s, at most an hour. */
export function retryDelayMs(attempts: number): number {
  return Math.min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1))
}

export interface ClaimedMail {
  id: string
  claim: string
  recipient: string
  template: string
  data: string
  attempts: number
}

/**
 * Claims up to `limit` due rows for this sender. Each row is taken by a conditional UPDATE (due,
 * and held by nobody or by a claim that ran out), so of several replicas exactly one gets it.
 */
export async function claimDueMail(
  db: Kysely<Database>,
  clock: Clock,
  limit: number,
): Promise<ClaimedMail[]> {
  const now = clock()
  const due = await db
    .selectFrom('mail_queue')
    .select('id')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<=', now)]))
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute()
  const claimed: ClaimedMail[] = []
  for (const { id } of due) {
    const claim = randomBytes(16).toString('base64url')
    const row = await db
      .updateTable('mail_queue')
      .set({ claim, claimed_until: now + CLAIM_MS })
      .where('id', '=', id)
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<=', now)]))
      .returning(['id', 'recipient', 'template', 'data', 'attempts'])
      .executeTakeFirst()
    if (row !== undefined) claimed.push({ ...row, claim })
  }
  return claimed
}

/** A delivered (or given up) mail is deleted: the queue keeps no copy of what was sent. */
export async function removeMail(db: Kysely<Database>, mail: ClaimedMail): Promise<void> {
  await db
    .deleteFrom('mail_queue')
    .where('id', '=', mail.id)
    .where('claim', '=', mail.claim)
    .execute()
}

/** A failed attempt: released for the next one after the backoff. */
export async function retryMailLater(
  db: Kysely<Database>,
  clock: Clock,
  mail: ClaimedMail,
): Promise<void> {
  const attempts = mail.attempts + 1
  await db
    .updateTable('mail_queue')
    .set({
      attempts,
      next_attempt_at: clock() + retryDelayMs(attempts),
      claim: null,
      claimed_until: null,
    })
    .where('id', '=', mail.id)
    .where('claim', '=', mail.claim)
    .execute()
}
