import { recordAudit } from '../audit/audit.js'
import type { User } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import type { AccessTokenDeps } from '../tokens/access-token.js'
import { issueTokenPair, type TokenPair } from '../tokens/token-pair.js'
import { type ClientContext, type SessionDeps, startSession } from './sessions.js'

export type OpenSessionDeps = SessionDeps & AccessTokenDeps

/**
 * The end of every successful login, whatever proved the identity (`method`: `password` or the
 * federated provider): a new session, its audit event and the first token pair. The session is
 * opened only if the user is still enabled and, given `credentialVersion` (the version the
 * password was checked against), the credential has not changed since (`startSession`).
 */
export async function openSession(
  deps: OpenSessionDeps,
  user: User,
  client: ClientContext,
  method: string,
  credentialVersion?: number,
): Promise<TokenPair> {
  const issued = await inTransaction(deps.db, async (tx) => {
    const started = await startSession({ ...deps, db: tx }, user.id, client, credentialVersion)
    await recordAudit(tx, deps.clock, {
      event: 'login_succeeded',
      userId: user.id,
      sessionId: started.sessionId,
      ip: client.ip,
      detail: { method },
    })
    return started
  })
  return issueTokenPair(deps, user, issued)
}
