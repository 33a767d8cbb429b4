import { Readable, Writable } from 'node:stream'
import { runTessera } from '../../src/cli/main.js'
import type { CliResult } from './process.js'

/** A stream that keeps what is written to it. */
function collector(): { stream: Writable; text(): string } {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      text += chunk.toString()
      done()
    },
  })
  return { stream, text: () => text }
}

/**
 * `tessera <args>` run in this process over its own environment and streams: the same code as
 * bin/tessera.cjs runs, without a process start per call. `input` is piped standard input (not a
 * terminal). The cases about the process itself (exit status, file modes seen by another
 * process, the real stdin) use runCli in process.ts instead.
 */
export async function runTesseraInProcess(
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Promise<CliResult> {
  const stdout = collector()
  const stderr = collector()
  const code = await runTessera(args, {
    env: { ...options.env },
    stdin: Readable.from([options.input ?? '']),
    stdout: stdout.stream,
    stderr: stderr.stream,
  })
  return { code, stdout: stdout.text(), stderr: stderr.text() }
}
