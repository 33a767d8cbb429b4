import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
export async function up(db: Kysely<any>): Promise<void> {
  // Bumped by every change that must end logins checked against the old state (password change,
  // disable): the transaction that opens a session requires the version its check saw (README,
  // "Passwords and login").
  await db.schema
    .alterTable('users')
    .addColumn('credential_version', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
  // The per-session refresh limit's fixed window, counted by the statement that locks the session
  // at the start of each refresh (README, "Tokens").
  await db.schema
    .alterTable('sessions')
    .addColumn('refresh_window_start', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()
  await db.schema
    .alterTable('sessions')
    .addColumn('refresh_count', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
  // Before this migration the reuse interval marked the child it replaced `revoked`. Every other
  // revocation also revoked the session, so a revoked token of a live session is such a child:
  // it becomes `superseded`, whose presentation now counts as reuse.
  await db
    .updateTable('refresh_tokens')
    .set({ status: 'superseded' })
    .where('status', '=', 'revoked')
    .where('family_id', 'in', (eb: any) =>
      eb.selectFrom('sessions').select('id').where('revoked_at', 'is', null),
    )
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db
    .updateTable('refresh_tokens')
    .set({ status: 'revoked' })
    .where('status', '=', 'superseded')
    .execute()
  await db.schema.alterTable('sessions').dropColumn('refresh_count').execute()
  await db.schema.alterTable('sessions').dropColumn('refresh_window_start').execute()
  await db.schema.alterTable('users').dropColumn('credential_version').execute()
}
