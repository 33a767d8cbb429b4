import { getUser } from '../accounts/accounts.js'
import type { User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import { withSecondFactor } from '../sessions/amr.js'
import { type OpenSessionDeps, openSession } from '../sessions/open-session.js'
import type { ClientContext } from '../sessions/sessions.js'
import type { TokenPair } from '../tokens/token-pair.js'
import { checkSecondFactor, enrolledFactors, type FactorDeps, type FactorProof } from './factors.js'
import { type FirstFactor, issueMfaTicket, readMfaTicket, spendMfaTicket } from './tickets.js'

export type MfaLoginDeps = FactorDeps & OpenSessionDeps

/**
 * The gate between a first factor and a session (README, "Second factors"): for an account with
 * a second factor, the `mfa_required` problem carrying a new MFA ticket and the factors it can
 * use; for one without, undefined (the caller opens the session). Every login that ends in a
 * session for a person passes here: the API's password login, the pages' sign-in, federated
 * login. A first factor that already is multi-factor (a trusted provider's `mfa`) passes.
 */
export async function secondFactorChallenge(
  t: Pick<MfaLoginDeps, 'db' | 'clock'>,
  first: FirstFactor,
): Promise<TesseraError | undefined> {
  if (first.amr.includes('mfa')) return undefined
  const factors = await enrolledFactors(t.db, first.userId)
  if (factors.length === 0) return undefined
  const ticket = await issueMfaTicket(t, first)
  return new TesseraError(
    'mfa_required',
    'This account has a second factor: send the MFA ticket with a code to POST ' +
      '/v1/user/auth/mfa',
    { mfa: { mfa_ticket: ticket, factors } },
  )
}

/**
 * The second step of a login: a live ticket and a right second factor open the session the
 * first factor earned, with `amr` the first factor's plus the second's and `mfa`. The factor is
 * spent before the ticket, which the session's own transaction spends (`spendMfaTicket`), so a
 * ticket opens at most one session; a wrong factor leaves the ticket usable until it expires,
 * and counts against the user's MFA budget.
 */
export async function completeMfaLogin(
  t: MfaLoginDeps,
  ticket: string,
  proof: FactorProof,
  client: ClientContext,
): Promise<{ user: User; pair: TokenPair }> {
  const open = await readMfaTicket(t, ticket)
  const user = await getUser(t.db, open.userId)
  const method = await checkSecondFactor(t, user, proof, client)
  const pair = await openSession(t, user, client, {
    method: open.method,
    amr: withSecondFactor(open.amr, method),
    credentialVersion: open.credentialVersion,
    grant: open.grant,
    claim: (tx) => spendMfaTicket(tx, t.clock, open),
  })
  return { user, pair }
}
