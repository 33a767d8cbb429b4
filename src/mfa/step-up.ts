import { getUser } from '../accounts/accounts.js'
import { recordAudit } from '../audit/audit.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { parseStoredAmr, storedAmr, withSecondFactor } from '../sessions/amr.js'
import type { ClientContext } from '../sessions/sessions.js'
import { type AccessTokenDeps, issueAccessToken } from '../tokens/access-token.js'
import { requestedGrant } from '../tokens/grant.js'
import { checkSecondFactor, type FactorDeps, type FactorProof } from './factors.js'

export type StepUpDeps = FactorDeps & AccessTokenDeps

/** openapi.yaml, `SteppedUp`: an access token of the raised session. */
export interface SteppedUp {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
}

/**
 * Step-up (README, "Second factors"): a session without a second factor is raised to one without
 * signing out. The factor is checked and spent, then the session row's `amr` gains its method
 * and `mfa`, so this access token and every one its refresh token mints from now on carry it.
 * The answer is a fresh access token for the same session, audience and scopes as the one
 * presented; the refresh token is unchanged. Only API and browser sessions: a personal or job
 * token proves nothing of its holder and cannot be raised.
 */
export async function stepUpSession(
  t: StepUpDeps,
  claims: { sub: string; sid: string; aud: string; scope?: string | undefined },
  proof: FactorProof,
  client: ClientContext,
): Promise<SteppedUp> {
  const user = await getUser(t.db, claims.sub)
  const method = await checkSecondFactor(t, user, proof, client)
  const amr = await inTransaction(t.db, async (tx) => {
    const row = await tx
      .selectFrom('sessions')
      .select('amr')
      .where('id', '=', claims.sid)
      .where('user_id', '=', user.id)
      .where('kind', 'in', ['api', 'browser'])
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', t.clock())
      .executeTakeFirst()
    if (row === undefined) {
      throw new TesseraError('unauthorized', 'The session of this access token has ended', {
        invalidToken: true,
      })
    }
    const raised = withSecondFactor(parseStoredAmr(row.amr), method)
    await tx
      .updateTable('sessions')
      .set({ amr: storedAmr(raised) })
      .where('id', '=', claims.sid)
      .execute()
    await recordAudit(tx, t.clock, {
      event: 'mfa_step_up',
      userId: user.id,
      sessionId: claims.sid,
      ip: client.ip,
      detail: { factor: proof.kind },
    })
    return raised
  })
  const grant = requestedGrant(t.config, { audience: claims.aud, scope: claims.scope })
  return {
    access_token: await issueAccessToken(t, user, claims.sid, { grant, amr }),
    token_type: 'Bearer',
    expires_in: t.config.accessTokenTtl,
  }
}
