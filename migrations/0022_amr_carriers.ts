import type { Kysely } from 'kysely'

// Frozen in time: migrations never import application code and take Kysely<any>.
// The authentication methods (RFC 8176 `amr`; README, "Second factors") travel with the grants
// that open a session later: a one-time login code minted by the sign-in page carries the
// browser session's, an approved device authorization the approving session's. Space-separated
// like `sessions.amr`; null for rows written before this migration and for a federated
// provider's code without a trusted MFA claim, whose session takes its method's default.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('login_codes').addColumn('amr', 'text').execute()
  await db.schema.alterTable('device_authorizations').addColumn('amr', 'text').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('device_authorizations').dropColumn('amr').execute()
  await db.schema.alterTable('login_codes').dropColumn('amr').execute()
}
