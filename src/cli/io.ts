/**
 * What one run of the `tessera` command reads and writes: its environment and standard streams.
 * bin/tessera.cjs runs it over the process's own (processIo); tests run it in-process with their
 * own, so only the cases that are about the process itself need a child process.
 */
export interface CliIo {
  env: NodeJS.ProcessEnv
  /** `isTTY` decides between a prompt without echo and reading the first line (prompt.ts). */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

export function processIo(): CliIo {
  return { env: process.env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }
}

/** One line to standard output, as console.log writes it. */
export function printLine(io: CliIo, text: string): void {
  io.stdout.write(`${text}\n`)
}

/** One line to standard error, as console.error writes it. */
export function printError(io: CliIo, text: string): void {
  io.stderr.write(`${text}\n`)
}
