import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database, WebauthnChallengesTable } from '../db/schema.js'
import { TesseraError } from '../errors.js'

/**
 * The challenges of WebAuthn ceremonies (README, "Passkeys"). The options a client asks for carry
 * a fresh random challenge; the client gets with them a handle naming the row that keeps it, and
 * presents the handle with the authenticator's answer. A row, not process memory, so any replica
 * can finish a ceremony another began; only the handle's SHA-256 is stored.
 *
 * Single use and short-lived: one conditional UPDATE claims the row (of N presentations, on any
 * replica, one proceeds), before the answer is verified, so a failed verification has spent the
 * challenge too. Unknown, spent, expired and other-purpose handles all answer
 * `challenge_expired`.
 */
export const CHALLENGE_TTL_SECONDS = 300

const HANDLE_PREFIX = 'tessera_wc_'
const HANDLE_PATTERN = /^tessera_wc_[A-Za-z0-9_-]{43}$/

export type ChallengePurpose = WebauthnChallengesTable['purpose']

export interface ChallengeDeps {
  db: Kysely<Database>
  clock: Clock
}

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('base64url')

/** A fresh WebAuthn challenge (32 random bytes, base64url), as the options carry it. */
export function newChallenge(): string {
  return randomBytes(32).toString('base64url')
}

/**
 * Keeps `challenge` for one ceremony of `purpose` (for `userId`, or for whoever answers when
 * null) and answers its handle. Expired rows are deleted whenever a new one is made, as link
 * tickets are.
 */
export async function storeChallenge(
  t: ChallengeDeps,
  purpose: ChallengePurpose,
  userId: string | null,
  challenge: string,
): Promise<{ handle: string; expiresAt: number }> {
  const handle = HANDLE_PREFIX + randomBytes(32).toString('base64url')
  const now = t.clock()
  const expiresAt = now + CHALLENGE_TTL_SECONDS * 1000
  await t.db.deleteFrom('webauthn_challenges').where('expires_at', '<', now).execute()
  await t.db
    .insertInto('webauthn_challenges')
    .values({
      id: sha256(handle),
      challenge,
      purpose,
      user_id: userId,
      created_at: now,
      expires_at: expiresAt,
      used_at: null,
    })
    .execute()
  return { handle, expiresAt }
}

/**
 * Spends the challenge `handle` names and answers it, if it is live, of `purpose`, and of
 * `userId` (null: a ceremony that named no user). Anything else is `challenge_expired`.
 */
export async function claimChallenge(
  t: ChallengeDeps,
  handle: string,
  purpose: ChallengePurpose,
  userId: string | null,
): Promise<string> {
  const now = t.clock()
  let claim = t.db
    .updateTable('webauthn_challenges')
    .set({ used_at: now })
    .where('id', '=', sha256(handle))
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
  claim = userId === null ? claim.where('user_id', 'is', null) : claim.where('user_id', '=', userId)
  const row = HANDLE_PATTERN.test(handle)
    ? await claim.returning('challenge').executeTakeFirst()
    : undefined
  if (row === undefined) {
    throw new TesseraError(
      'challenge_expired',
      'This passkey challenge is unknown, expired or already used: ask for new options',
    )
  }
  return row.challenge
}
