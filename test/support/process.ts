import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Env } from '../../src/config/index.js'
import { testKeyEnv } from './app.js'
import { requestTo } from './http.js'

/**
 * Tessera as separate OS processes, for the tests that need more than one server on one database
 * (replicas, crashes) or the real command line. Each process is the installed command,
 * `node bin/tessera.cjs ...` over the compiled code (global-setup.ts builds it): it imports the
 * code in the same process, so `pid` is the server itself and `kill('SIGKILL')` really is
 * `kill -9` of the server.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const ENTRY = ['bin/tessera.cjs']
// Generous: a loaded CI machine has taken more than 15 s to start a server.
const READY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 5_000
// Below vitest's test timeout (30 s), so that a command that hangs fails its test with its own
// name and output instead of the test's bare timeout.
const CLI_TIMEOUT_MS = 25_000

/** Children still running, killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * The environment of a child: only what a process needs to run (no configuration leaks in from
 * the shell running the tests), then the caller's variables.
 */
function childEnv(extra: Env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'TZ', 'LANG', 'SYSTEMROOT']) {
    if (process.env[name] !== undefined) env[name] = process.env[name]
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value !== undefined) env[name] = value
  }
  return env
}

/** A TCP port nothing listens on right now (the OS picks it; it is released before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))))
    })
  })
}

export interface TesseraProcess {
  /** `http://127.0.0.1:<port>` */
  url: string
  pid: number
  /** Sends a signal (default SIGTERM) without waiting. */
  kill(signal?: NodeJS.Signals): void
  /** The exit code once the process ended; null when a signal ended it. */
  exited: Promise<number | null>
  /** SIGTERM (graceful shutdown), then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>
  /** What the process wrote to stdout and stderr so far (for failure messages). */
  output(): string
  /** fetch against the process, like `TestApp.request`: a JSON body is serialised. */
  request(path: string, init?: RequestInit & { json?: unknown; token?: string }): Promise<Response>
}

export interface StartOptions {
  databaseUrl: string
  /** More environment (RATE_LIMIT_..., TRUST_PROXY, PGAPPNAME, ...), over the defaults. */
  env?: Env
}

/**
 * Starts `tessera serve` on a free loopback port and resolves once `GET /ready` answers 200.
 * Rejects with the process's output when it exits first or is not ready within 15 s.
 */
export async function startTesseraProcess(options: StartOptions): Promise<TesseraProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, await freePort())
    } catch (error) {
      // Another process may take the port between freePort() and our listen(): try another.
      if (attempt < 3 && error instanceof Error && error.message.includes('EADDRINUSE')) continue
      throw error
    }
  }
}

async function startOnce(options: StartOptions, port: number): Promise<TesseraProcess> {
  const url = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, [...ENTRY, 'serve'], {
    cwd: ROOT,
    env: childEnv({
      HOST: '127.0.0.1',
      PORT: String(port),
      // The issuer would follow the random port; the catalogs and verifiers of the tests expect
      // the one issuer every test app signs with.
      TESSERA_ISSUER: 'http://localhost:8000',
      DATABASE_URL: options.databaseUrl,
      LOG_LEVEL: 'silent',
      ...testKeyEnv(options.databaseUrl, options.env),
      ...options.env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child)
      resolve(code)
    })
  })
  let hasExited = false
  void exited.then(() => (hasExited = true))

  const handle: TesseraProcess = {
    url,
    pid: child.pid ?? -1,
    kill(signal = 'SIGTERM') {
      child.kill(signal)
    },
    exited,
    async stop() {
      if (hasExited) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
      await exited
      clearTimeout(timer)
    },
    output: () => output,
    request: requestTo(url),
  }

  const deadline = Date.now() + READY_TIMEOUT_MS
  while (true) {
    if (hasExited) {
      throw new Error(
        `tessera serve exited with ${child.exitCode ?? child.signalCode} before it was ready:\n` +
          output,
      )
    }
    if (Date.now() > deadline) {
      await handle.stop()
      throw new Error(`tessera serve was not ready within ${READY_TIMEOUT_MS} ms:\n${output}`)
    }
    try {
      const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1_000) })
      await res.body?.cancel()
      if (res.status === 200) return handle
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `tessera <args>` against a database, feeding `input` on stdin, and collects its output. */
export function runCli(
  args: string[],
  options: { databaseUrl: string; env?: Env; input?: string },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...ENTRY, ...args], {
      cwd: ROOT,
      env: childEnv({
        DATABASE_URL: options.databaseUrl,
        LOG_LEVEL: 'silent',
        ...testKeyEnv(options.databaseUrl, options.env),
        ...options.env,
      }),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    running.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(
          `tessera ${args.join(' ')} did not finish within ${CLI_TIMEOUT_MS} ms:\n` +
            stdout +
            stderr,
        ),
      )
    }, CLI_TIMEOUT_MS)
    child.once('error', (error) => {
      clearTimeout(timer)
      running.delete(child)
      reject(error)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      running.delete(child)
      resolve({ code, stdout, stderr })
    })
    child.stdin.on('error', () => {}) // a command that does not read stdin may close it early
    child.stdin.end(options.input ?? '')
  })
}

/** A `tessera` command still running: its output so far, signals, and its end. */
export interface RunningCli {
  pid: number
  stdout(): string
  stderr(): string
  /** Resolves with the first match of `pattern` in stdout + stderr (rejects after `timeoutMs`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  kill(signal?: NodeJS.Signals): void
  /** The exit code, or the signal's name when a signal ended it. */
  exited: Promise<number | string>
}

/**
 * Starts `tessera <args>` (the installed command) and returns at once, for the commands a test
 * talks to while they run (a login waiting for an approval, Ctrl-C). Killed with SIGKILL if the
 * test process exits first.
 */
export function startCli(args: string[], options: { env?: Env } = {}): RunningCli {
  const child = spawn(process.execPath, [...ENTRY, ...args], {
    cwd: ROOT,
    env: childEnv({ LOG_LEVEL: 'silent', ...options.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let stdout = ''
  let stderr = ''
  const changed = new Set<() => void>()
  const notify = () => {
    for (const listener of changed) listener()
  }
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    notify()
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
    notify()
  })
  let closed = false
  const exited = new Promise<number | string>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(child)
      closed = true
      resolve(code ?? signal ?? 'unknown')
      notify()
    })
  })
  return {
    pid: child.pid ?? -1,
    stdout: () => stdout,
    stderr: () => stderr,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    exited,
    waitFor(pattern, timeoutMs = CLI_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = (stdout + stderr).match(pattern)
          if (match !== null) {
            done()
            resolve(match)
          } else if (closed) {
            done()
            reject(new Error(`tessera exited before printing ${pattern}:\n${stdout}${stderr}`))
          }
        }
        const timer = setTimeout(() => {
          done()
          reject(
            new Error(
              `tessera did not print ${pattern} within ${timeoutMs} ms:\n${stdout}${stderr}`,
            ),
          )
        }, timeoutMs)
        const done = () => {
          clearTimeout(timer)
          changed.delete(check)
        }
        changed.add(check)
        check()
      })
    },
  }
}
