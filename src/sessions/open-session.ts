import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Database, User } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import type { AccessTokenDeps } from '../tokens/access-token.js'
import type { AccessGrant } from '../tokens/grant.js'
import { issueTokenPair, type TokenPair } from '../tokens/token-pair.js'
import { type ClientContext, type SessionDeps, startSession } from './sessions.js'

export type OpenSessionDeps = SessionDeps & AccessTokenDeps

export interface OpenSessionOptions {
  /** What proved the identity: `password`, `device`, a federated provider's name (audit). */
  method: string
  /**
   * The session's RFC 8176 methods (README, "Second factors"); by default `pwd` for a password
   * and `fed` for a provider; none otherwise.
   */
  amr?: readonly string[] | undefined
  /** The version the password was checked against (`startSession`). */
  credentialVersion?: number | undefined
  claim?: ((tx: Kysely<Database>) => Promise<void>) | undefined
  grant?: AccessGrant | undefined
}

/** The methods a login by `method` proved when nobody says more (`OpenSessionOptions.amr`). */
export function defaultAmr(method: string): string[] {
  if (method === 'password') return ['pwd']
  if (method === 'device' || method === 'session' || method === 'passkey') return []
  return ['fed']
}

/**
 * The end of every successful login, whatever proved the identity (`method`: `password` or the
 * federated provider): a new session, its audit event and the first token pair. The session is
 * opened only if the user is still enabled and, given `credentialVersion` (the version the
 * password was checked against), the credential has not changed since (`startSession`).
 *
 * `claim`, when given, runs last in the same transaction, after the user's row lock: the grant
 * that proved the identity spends itself there (the device grant's approved code, an MFA
 * ticket), and a claim that throws rolls the session back, so one grant opens at most one
 * session. A password login remembers its device cookie there (`signInWithPassword`). The token
 * pair is signed after the commit: signing may read the keys, which must not wait on this
 * transaction. `grant`: the access token's audience and scopes, when the client
 * asked for others than an ordinary login's (README, "Scripts, pipelines and services").
 */
export async function openSession(
  deps: OpenSessionDeps,
  user: User,
  client: ClientContext,
  options: OpenSessionOptions,
): Promise<TokenPair> {
  const { method, credentialVersion, claim, grant } = options
  const amr = options.amr ?? defaultAmr(method)
  const issued = await inTransaction(deps.db, async (tx) => {
    const started = await startSession({ ...deps, db: tx }, user.id, client, credentialVersion, amr)
    await recordAudit(tx, deps.clock, {
      event: 'login_succeeded',
      userId: user.id,
      sessionId: started.sessionId,
      ip: client.ip,
      detail: { method, ...(amr.length === 0 ? {} : { amr: amr.join(' ') }) },
    })
    if (claim !== undefined) await claim(tx)
    return started
  })
  return issueTokenPair(deps, user, issued, grant)
}
