import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import type { CliIo } from './io.js'

/**
 * Reads a secret: from a terminal without echo, otherwise the first line of standard input
 * (so scripts can pipe it; it never has to appear in argv or the shell history).
 */
export async function readSecret(io: CliIo, prompt: string): Promise<string> {
  const interactive = io.stdin.isTTY === true
  let muted = false
  const output = new Writable({
    write(chunk, _encoding, done) {
      if (!muted) io.stderr.write(chunk)
      done()
    },
  })
  const rl = createInterface({ input: io.stdin, output, terminal: interactive })
  try {
    return await new Promise<string>((resolve, reject) => {
      rl.once('close', () => reject(new Error('No password given on standard input')))
      // Piped input gets no prompt: there is nobody to read it.
      rl.question(interactive ? prompt : '', (answer) => {
        if (interactive) io.stderr.write('\n')
        resolve(answer)
      })
      muted = interactive
    })
  } finally {
    rl.removeAllListeners('close')
    rl.close()
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
