import { CliFailure } from './failure.js'

/** A problem+json answer: printed as `code: detail`. */
export class ProblemError extends CliFailure {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`)
  }
}

/** A server's answer: a JSON body, or its problem document. */
export type Answer =
  | { ok: true; status: number; body: unknown }
  | { ok: false; status: number; problem: ProblemError; body?: unknown }

export function expectOk(answer: Answer): unknown {
  if (!answer.ok) throw answer.problem
  return answer.body
}

/**
 * Requests as the stored login: its access token refreshed first when about to expire, and once
 * more when the server answers 401 for it (the server's clock decides; a token it calls expired
 * or revoked). `reauthentication_required` is a 401 about the session, not the token: no refresh.
 */
export type AuthorizedRequest = (
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  json?: unknown,
) => Promise<Answer>
