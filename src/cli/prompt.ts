import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import type { CliIo } from './io.js'

/**
 * Reads a secret: from a terminal without echo, otherwise the first line of standard input
 * (so scripts can pipe it; it never has to appear in argv or the shell history).
 */
export async function readSecret(io: CliIo, prompt: string): Promise<string> {
  const reader = secretReader(io)
  try {
    return await reader.read(prompt)
  } finally {
    reader.close()
  }
}

/**
 * Reads one line of an answer: after the prompt on a terminal, otherwise the first line of
 * standard input. Undefined when standard input ends without one.
 */
export async function readLine(io: CliIo, prompt: string): Promise<string | undefined> {
  const interactive = io.stdin.isTTY === true
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: interactive })
  try {
    return await new Promise<string | undefined>((resolve) => {
      rl.once('close', () => resolve(undefined))
      rl.question(interactive ? prompt : '', resolve)
    })
  } finally {
    rl.removeAllListeners('close')
    rl.close()
  }
}

/**
 * `readSecret` for several answers in a row (a password, then a second-factor code): one reader
 * over standard input, so piped lines after the first are not lost between prompts.
 */
export function secretReader(io: CliIo): {
  /** `missing`: the error when standard input ends first. */
  read(prompt: string, missing?: string): Promise<string>
  close(): void
} {
  const interactive = io.stdin.isTTY === true
  let muted = false
  const output = new Writable({
    write(chunk, _encoding, done) {
      if (!muted) io.stderr.write(chunk)
      done()
    },
  })
  const rl = createInterface({ input: io.stdin, output, terminal: interactive })
  const lines = rl[Symbol.asyncIterator]()
  return {
    async read(prompt, missing = 'No password given on standard input') {
      if (interactive) io.stderr.write(prompt)
      muted = interactive
      try {
        const next = await lines.next()
        if (next.done === true) throw new Error(missing)
        return next.value
      } finally {
        muted = false
        if (interactive) io.stderr.write('\n')
      }
    },
    close: () => rl.close(),
  }
}
