import {
  type RecentAuthenticationDeps,
  requireRecentAuthentication,
} from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import type { ClientContext } from '../sessions/sessions.js'

/**
 * Removes one of the session user's passkeys (README, "Passkeys"), after a recent
 * authentication: a thief holding only a bearer token must not strip the owner's ways in. Another
 * user's passkey and an unknown id answer the same 404. Sessions the passkey opened stay: ending
 * them is the session list's job (or "sign out everywhere"), as for an unlinked identity.
 */
export async function removePasskey(
  t: RecentAuthenticationDeps,
  session: { sub: string; sid: string },
  passkeyId: string,
  client: ClientContext,
): Promise<void> {
  await requireRecentAuthentication(t, session.sid)
  await inTransaction(t.db, async (tx) => {
    const removed = await tx
      .deleteFrom('passkeys')
      .where('id', '=', passkeyId)
      .where('user_id', '=', session.sub)
      .executeTakeFirst()
    if (removed.numDeletedRows === 0n) throw new TesseraError('not_found', 'No such passkey')
    await recordAudit(tx, t.clock, {
      event: 'passkey_removed',
      userId: session.sub,
      sessionId: session.sid,
      ip: client.ip,
      detail: { passkey: passkeyId },
    })
  })
}
