/**
 * A failure of a client command with a message for the user: exit 1, 2 for a usage error (the
 * usage is printed after it), 130 for a login cancelled with Ctrl-C (128 + SIGINT, as shells
 * report it).
 */
export class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message)
  }
}

/** The exit code of a command the user interrupted with Ctrl-C. */
export const CANCELLED_EXIT_CODE = 130

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
  | { ok: false; status: number; problem: ProblemError }

export function expectOk(answer: Answer): unknown {
  if (!answer.ok) throw answer.problem
  return answer.body
}
