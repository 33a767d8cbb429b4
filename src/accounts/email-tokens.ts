import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database, EmailTokenPurpose } from '../db/schema.js'
import { TesseraError } from '../errors.js'

/**
 * The tokens of email ownership (README, "Email verification and change"): 256 random bits with a
 * prefix naming their purpose, stored only as SHA-256, single use across replicas (one
 * conditional UPDATE claims a token), expiring. A newer token of the same kind voids the older
 * ones, so only the last mail's link works.
 *
 * Lifetimes: a verification mail may be read a day later (24 h); an email change is a pending
 * change of a credential, so its confirmation and its cancellation live one hour.
 */
export const VERIFY_TOKEN_TTL_SECONDS = 86_400
export const CHANGE_TOKEN_TTL_SECONDS = 3_600

const PREFIXES: Record<EmailTokenPurpose, string> = {
  verify: 'tessera_ev_',
  change: 'tessera_ec_',
  cancel: 'tessera_ex_',
}
const TOKEN_PATTERN = /^tessera_e[vcx]_[A-Za-z0-9_-]{43}$/

/** The longest token: bounds the API's and the pages' token fields. */
export const EMAIL_TOKEN_MAX_LENGTH = 64

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('base64url')

/** The purpose a token's prefix names, if it has the shape of one. */
export function emailTokenPurpose(token: string): EmailTokenPurpose | undefined {
  if (!TOKEN_PATTERN.test(token)) return undefined
  return (Object.keys(PREFIXES) as EmailTokenPurpose[]).find((p) => token.startsWith(PREFIXES[p]))
}

export function invalidEmailToken(): TesseraError {
  return new TesseraError(
    'invalid_email_token',
    'This link or code is unknown, expired or already used; ask for a new mail',
  )
}

/** Stores a new token's hash (inside the caller's transaction) and answers the token. */
export async function issueEmailToken(
  db: Kysely<Database>,
  clock: Clock,
  token: {
    userId: string
    purpose: EmailTokenPurpose
    email: string
    changeId: string | null
    ttlSeconds: number
  },
): Promise<{ token: string; expiresAt: number }> {
  const value = PREFIXES[token.purpose] + randomBytes(32).toString('base64url')
  const now = clock()
  const expiresAt = now + token.ttlSeconds * 1000
  await db.deleteFrom('email_tokens').where('expires_at', '<', now).execute()
  await db
    .insertInto('email_tokens')
    .values({
      token_hash: sha256(value),
      user_id: token.userId,
      purpose: token.purpose,
      email: token.email,
      change_id: token.changeId,
      created_at: now,
      expires_at: expiresAt,
      used_at: null,
    })
    .execute()
  return { token: value, expiresAt }
}

/**
 * Claims a token once: of N presentations on any replica, one gets the row. Unknown, used,
 * expired and other-purpose tokens are alike `undefined`.
 */
export async function claimEmailToken(
  db: Kysely<Database>,
  clock: Clock,
  token: string,
  purpose: EmailTokenPurpose,
) {
  if (emailTokenPurpose(token) !== purpose) return undefined
  const now = clock()
  return db
    .updateTable('email_tokens')
    .set({ used_at: now })
    .where('token_hash', '=', sha256(token))
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returning(['user_id', 'email', 'change_id'])
    .executeTakeFirst()
}

/** Spends the user's unused tokens of these purposes (a newer mail or a change supersedes them). */
export async function voidEmailTokens(
  db: Kysely<Database>,
  clock: Clock,
  userId: string,
  purposes: EmailTokenPurpose[],
): Promise<void> {
  await db
    .updateTable('email_tokens')
    .set({ used_at: clock() })
    .where('user_id', '=', userId)
    .where('purpose', 'in', purposes)
    .where('used_at', 'is', null)
    .execute()
}

/** Spends the other token of an email change (its cancellation once confirmed, or vice versa). */
export async function voidChange(
  db: Kysely<Database>,
  clock: Clock,
  changeId: string,
): Promise<void> {
  await db
    .updateTable('email_tokens')
    .set({ used_at: clock() })
    .where('change_id', '=', changeId)
    .where('used_at', 'is', null)
    .execute()
}
