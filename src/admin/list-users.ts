import { type Kysely, sql } from 'kysely'
import { toUserView, type UserView } from '../accounts/accounts.js'
import { keysetPage, olderThanCursor } from '../db/keyset-cursor.js'
import type { AccountType, Database, User } from '../db/schema.js'

/** What an admin sees of a user in a list: the client view plus whether it is disabled. */
export interface AdminUserView extends UserView {
  disabled: boolean
}

export function toAdminUserView(user: User): AdminUserView {
  return { ...toUserView(user), disabled: user.disabled !== 0 }
}

export interface UserFilters {
  accountType?: AccountType | undefined
  /** Academic verification (`users.verified`). */
  verified?: boolean | undefined
  emailVerified?: boolean | undefined
  disabled?: boolean | undefined
  /** Users with a linked identity at this provider. */
  provider?: string | undefined
  /** Epoch ms, inclusive. */
  createdAfter?: number | undefined
  /** Epoch ms, exclusive. */
  createdBefore?: number | undefined
  /** A case-insensitive prefix of the email address or of the display name. */
  q?: string | undefined
}

export const DEFAULT_PAGE_SIZE = 50
export const MAX_PAGE_SIZE = 200
export const QUERY_MAX_LENGTH = 100

export interface UserPage {
  users: AdminUserView[]
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null
}

/** `q` as a LIKE prefix: its own `%`, `_` and `\` match themselves (ESCAPE '\'). */
function likePrefix(q: string): string {
  return `${q
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}

/**
 * One page of users, newest first, after `cursor`. Keyset pagination over (created_at, id), the
 * order of a unique key: a walk through every page sees each row that existed when it started
 * exactly once, however many rows are inserted meanwhile (they sort before the first page, or
 * after the cursor with a later id, and are simply seen or not); an offset would skip or repeat.
 */
export async function listUsers(
  db: Kysely<Database>,
  filters: UserFilters,
  page: { cursor?: string | undefined; limit?: number | undefined },
): Promise<UserPage> {
  const limit = Math.min(Math.max(page.limit ?? DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
  let query = db.selectFrom('users').selectAll('users')
  if (filters.accountType !== undefined)
    query = query.where('account_type', '=', filters.accountType)
  if (filters.verified !== undefined) query = query.where('verified', '=', filters.verified ? 1 : 0)
  if (filters.emailVerified !== undefined)
    query = query.where('email_verified', '=', filters.emailVerified ? 1 : 0)
  if (filters.disabled !== undefined) query = query.where('disabled', '=', filters.disabled ? 1 : 0)
  if (filters.createdAfter !== undefined)
    query = query.where('created_at', '>=', filters.createdAfter)
  if (filters.createdBefore !== undefined)
    query = query.where('created_at', '<', filters.createdBefore)
  const provider = filters.provider
  if (provider !== undefined) {
    query = query.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('identities')
          .select('identities.user_id')
          .whereRef('identities.user_id', '=', 'users.id')
          .where('identities.provider', '=', provider),
      ),
    )
  }
  if (filters.q !== undefined && filters.q !== '') {
    const pattern = likePrefix(filters.q)
    // email_normalized is lower-cased already; the name is lowered here. SQLite's LIKE ignores
    // ASCII case and PostgreSQL's does not: both compare lowered text, so both agree.
    query = query.where((eb) =>
      eb.or([
        eb(sql`email_normalized`, 'like', sql`${pattern} escape '\\'`),
        eb(sql`lower(display_name)`, 'like', sql`${pattern} escape '\\'`),
      ]),
    )
  }
  if (page.cursor !== undefined) query = query.where(olderThanCursor('created_at', page.cursor))
  const rows = await query
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute()
  const { items, nextCursor } = keysetPage(rows, limit, (row) => row.created_at)
  return { users: items.map(toAdminUserView), nextCursor }
}
