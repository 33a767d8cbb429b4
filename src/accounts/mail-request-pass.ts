import type { Logger } from '../logger.js'
import {
  resolveVerificationInTransaction,
  type VerificationMailDeps,
} from './email-verification.js'
import {
  type MailRequestCursor,
  type MailRequestKind,
  pendingMailRequests,
  takeMailRequest,
} from './mail-requests.js'
import { type ResolveResetDeps, resolveResetInTransaction } from './password-reset.js'

const BATCH = 20
/** A flood of requests cannot hold a pass off sending: the rest waits for the next pass. */
const MOST_PER_PASS = 200

type ResolveDeps = ResolveResetDeps & VerificationMailDeps
type LogDeps = { logger: Pick<Logger, 'warn'> }

/**
 * Resolves the request `id` in one transaction: its row is taken (src/accounts/mail-requests.ts)
 * and its account's work done. Undefined when another pass resolved it; otherwise the outcome.
 */
export function resolveMailRequest(
  deps: ResolveDeps,
  id: string,
): Promise<{ kind: MailRequestKind; outcome: string } | undefined> {
  return deps.db.transaction().execute(async (tx) => {
    const request = await takeMailRequest(tx, id)
    if (request === undefined) return undefined
    // A kind this version does not know (a newer replica's, during an upgrade) fails, which
    // puts its row back for a replica that knows it.
    if (request.kind !== 'password_reset' && request.kind !== 'verify_email') {
      throw new Error(`unknown mail request kind ${JSON.stringify(request.kind)}`)
    }
    const outcome =
      request.kind === 'password_reset'
        ? await resolveResetInTransaction(tx, deps, request)
        : await resolveVerificationInTransaction(tx, deps, request)
    return { kind: request.kind, outcome }
  })
}

/**
 * Resolves every request answered so far, oldest first, so that of two password reset requests
 * for one account the newer one's token is the one left. The server's background pass calls this
 * before it sends the queued mail (src/server.ts), at most MOST_PER_PASS of them; a crash between
 * an answer and this leaves the row for a later pass. A request whose resolution fails is logged
 * and left for the next pass, and this one goes on past it: one bad row must not hold up every
 * later reset.
 */
export async function resolvePendingMailRequests(deps: ResolveDeps & LogDeps): Promise<void> {
  let after: MailRequestCursor | undefined
  for (let resolved = 0; resolved < MOST_PER_PASS; resolved += BATCH) {
    const pending = await pendingMailRequests(deps.db, BATCH, after)
    for (const request of pending) {
      try {
        await resolveMailRequest(deps, request.id)
      } catch (error) {
        deps.logger.warn(
          { err: error, mailRequest: request.id },
          'a mail request could not be resolved; the next pass tries it again',
        )
      }
      after = request
    }
    if (pending.length < BATCH) return
  }
}
