import type { Kysely } from 'kysely'
import type { AccountType, Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import { formatPasetoTime } from '../paseto/time.js'

/** openapi.yaml, `PublicProfile`: what a service may learn of a user. No email, no identities. */
export interface PublicProfile {
  id: string
  display_name: string | null
  account_type: AccountType
  verified: boolean
  created_at: string
}

/**
 * A user's public profile for a service client with `read-users` (README, "Service clients"),
 * say to show who owns a record. A disabled or unknown user is 404 alike.
 */
export async function publicProfile(db: Kysely<Database>, id: string): Promise<PublicProfile> {
  const user = await db
    .selectFrom('users')
    .select(['id', 'display_name', 'account_type', 'verified', 'created_at'])
    .where('id', '=', id)
    .where('disabled', '=', 0)
    .executeTakeFirst()
  if (user === undefined) throw new TesseraError('not_found', 'No such user')
  return {
    id: user.id,
    display_name: user.display_name,
    account_type: user.account_type,
    verified: user.verified === 1,
    created_at: formatPasetoTime(Number(user.created_at)),
  }
}
