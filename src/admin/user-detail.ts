import type { Kysely } from 'kysely'
import { getUser, listIdentities } from '../accounts/accounts.js'
import { type AuditEventView, listAuditEvents } from '../audit/query.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { listSessions, type SessionView } from '../sessions/sessions.js'
import { type AdminUserView, toAdminUserView } from './list-users.js'

export interface UserDetailDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'browserSessionIdleTtl'>
}

export interface UserDetail {
  user: AdminUserView
  identities: { provider: string; email: string | null; created_at: number }[]
  sessions: SessionView[]
  auditEvents: AuditEventView[]
}

/** How many of the user's latest audit events the detail shows. */
export const RECENT_AUDIT_EVENTS = 20

/** One user for an admin: the account, its linked identities, live sessions, latest events. */
export async function userDetail(deps: UserDetailDeps, userId: string): Promise<UserDetail> {
  const user = await getUser(deps.db, userId)
  const [identities, sessions, events] = await Promise.all([
    listIdentities(deps.db, userId),
    listSessions(deps, userId),
    listAuditEvents(deps.db, { userId }, { limit: RECENT_AUDIT_EVENTS }),
  ])
  return {
    user: toAdminUserView(user),
    identities,
    sessions,
    auditEvents: events.events,
  }
}
