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
