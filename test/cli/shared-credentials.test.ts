/**
 * Several `tessera` processes sharing one credentials file (array jobs on a shared home
 * directory, two terminals): the refresh is locked across processes and the file re-read under
 * the lock, so N processes refresh once (README, "Command line"; src/cli/token-store.ts). Each
 * command here is its own process (bin/tessera.cjs), against a test server in this process.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { hashRefreshToken } from '../../src/sessions/refresh-token.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import type { CliResult } from '../support/process.js'
import { PASSWORD, uniqueEmail } from '../support/users.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PROCESSES = 10
const COMMAND_TIMEOUT_MS = 90_000
/** Past the access token's expiry (900 s) on the server, beyond its 30 s clock-skew tolerance. */
const PAST_ACCESS_EXPIRY_MS = (900 + 30 + 1) * 1000

interface Entry {
  url: string
  access_token: string
  refresh_token: string
  access_expires_at: string
  refresh_expires_at: string
}

/**
 * `tessera <args>` as its own process, like runCli (test/support/process.ts) but allowed 90 s:
 * ten Node processes starting at once on a loaded two-core machine can take a while.
 */
function runCommand(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/tessera.cjs', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: process.env.TZ, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`tessera ${args.join(' ')} did not finish in time:\n${stdout}${stderr}`))
    }, COMMAND_TIMEOUT_MS)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function ok(run: CliResult): CliResult {
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0)
  return run
}

/** What `tessera_refreshes_total` counted so far, by outcome. */
async function refreshesByOutcome(app: TestApp): Promise<Record<string, number>> {
  const { values } = await app.server.tessera.metrics.refreshes.get()
  return Object.fromEntries(values.map((v) => [String(v.labels.outcome), v.value]))
}

function delta(after: Record<string, number>, before: Record<string, number>) {
  return Object.fromEntries(
    Object.entries(after)
      .map(([outcome, n]) => [outcome, n - (before[outcome] ?? 0)] as const)
      .filter(([, n]) => n !== 0),
  )
}

for (const interval of ['10', '0']) {
  describe(`processes sharing a credentials file, REFRESH_REUSE_INTERVAL=${interval} [sqlite]`, {
    timeout: 240_000,
  }, () => {
    let app: TestApp
    let root: string
    let xdg: string
    let count = 0

    beforeAll(async () => {
      app = await makeTestApp({
        env: {
          REFRESH_REUSE_INTERVAL: interval,
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_REGISTER_PER_IP: '0',
        },
      })
      root = mkdtempSync(join(tmpdir(), 'tessera-shared-'))
    })
    afterAll(async () => {
      await app?.close()
      if (root !== undefined) rmSync(root, { recursive: true, force: true })
    })
    beforeEach(() => {
      count += 1
      xdg = join(root, `config-${count}`)
    })

    const env = (url = app.url) => ({
      DATABASE_URL: 'unused',
      TESSERA_URL: url,
      XDG_CONFIG_HOME: xdg,
    })
    const credentialsDir = () => join(xdg, 'tessera')
    const credentialsFile = () => join(credentialsDir(), 'credentials.json')
    const lockDir = () => `${credentialsFile()}.lock`
    const entry = () =>
      (JSON.parse(readFileSync(credentialsFile(), 'utf8')) as { servers: Record<string, Entry> })
        .servers[app.url]!

    /** An account logged in through the CLI, its stored access token expired on both clocks. */
    async function loggedInAndExpired(): Promise<{ email: string; before: Entry }> {
      const email = uniqueEmail('shared')
      const input = `${PASSWORD}\n`
      ok(await runTesseraInProcess(['user', 'register', '--email', email], { env: env(), input }))
      ok(await runTesseraInProcess(['user', 'login', '--email', email], { env: env(), input }))
      // The server's clock passes the token's expiry; so does the one the file records, so every
      // process sees it expired before it asks the server anything.
      app.clock.advance(PAST_ACCESS_EXPIRY_MS)
      const file = JSON.parse(readFileSync(credentialsFile(), 'utf8')) as {
        servers: Record<string, Entry>
      }
      file.servers[app.url]!.access_expires_at = new Date(Date.now() - 1_000).toISOString()
      writeFileSync(credentialsFile(), JSON.stringify(file), { mode: 0o600 })
      return { email, before: entry() }
    }

    async function familyOf(refreshToken: string) {
      const db = app.server.tessera.db
      const row = await db
        .selectFrom('refresh_tokens')
        .select('family_id')
        .where('token_hash', '=', hashRefreshToken(refreshToken))
        .executeTakeFirstOrThrow()
      const tokens = await db
        .selectFrom('refresh_tokens')
        .select(['token_hash', 'status'])
        .where('family_id', '=', row.family_id)
        .execute()
      const session = await db
        .selectFrom('sessions')
        .select(['revoked_at', 'revoked_reason'])
        .where('id', '=', row.family_id)
        .executeTakeFirstOrThrow()
      return { tokens, session }
    }

    it(`${PROCESSES} whoami at once after expiry: one refresh, all succeed`, async () => {
      const { email, before } = await loggedInAndExpired()
      const counted = await refreshesByOutcome(app)

      const runs = await Promise.all(
        Array.from({ length: PROCESSES }, () => runCommand(['user', 'whoami'], env())),
      )
      for (const run of runs) expect(ok(run).stdout).toContain(email)

      // Exactly one refresh reached the server, and it rotated: no replay, no reuse.
      expect(delta(await refreshesByOutcome(app), counted)).toEqual({ rotated: 1 })
      const after = entry()
      expect(after.refresh_token).not.toBe(before.refresh_token)
      // The family holds the login's token and its one child, and the session is alive.
      const { tokens, session } = await familyOf(before.refresh_token)
      expect(new Set(tokens.map((t) => t.token_hash))).toEqual(
        new Set([hashRefreshToken(before.refresh_token), hashRefreshToken(after.refresh_token)]),
      )
      expect(session.revoked_at).toBeNull()
      // The stored pair is the live one, and the lock is gone with every temporary file.
      expect(statSync(credentialsFile()).mode & 0o777).toBe(0o600)
      expect(readdirSync(credentialsDir())).toEqual(['credentials.json'])
      ok(await runCommand(['user', 'whoami'], env()))
      expect(entry().refresh_token).toBe(after.refresh_token)
    })

    // The lock's own behaviour does not depend on the server's interval: tested once.
    if (interval !== '10') return

    it('a lock left by a killed process is taken over once it is stale', async () => {
      const { email, before } = await loggedInAndExpired()
      // What kill -9 during a refresh leaves: the lock directory, no longer renewed.
      mkdirSync(lockDir(), { mode: 0o700 })
      const old = new Date(Date.now() - 11_000)
      utimesSync(lockDir(), old, old)
      const run = ok(await runCommand(['user', 'whoami'], env()))
      expect(run.stdout).toContain(email)
      expect(entry().refresh_token).not.toBe(before.refresh_token)
      expect(existsSync(lockDir())).toBe(false)
    })

    it('a live lock is waited for', async () => {
      await loggedInAndExpired()
      // The lock as a process holding it leaves it: the holder renews it until it is done.
      mkdirSync(lockDir(), { mode: 0o700 })
      const renew = setInterval(() => {
        const now = new Date()
        utimesSync(lockDir(), now, now)
      }, 500)
      try {
        const counted = await refreshesByOutcome(app)
        const waiting = runCommand(['user', 'whoami'], env())
        await new Promise((resolve) => setTimeout(resolve, 3_000))
        // Still waiting: nothing was refreshed behind the holder's back.
        expect(existsSync(lockDir())).toBe(true)
        expect(delta(await refreshesByOutcome(app), counted)).toEqual({})
        clearInterval(renew)
        rmSync(lockDir(), { recursive: true })
        ok(await waiting)
        expect(delta(await refreshesByOutcome(app), counted)).toEqual({ rotated: 1 })
      } finally {
        clearInterval(renew)
      }
    })

    it('Ctrl-C during a refresh leaves no lock behind (a 0700 one meanwhile)', async () => {
      await loggedInAndExpired()
      // A server that accepts the refresh and never answers, so the command is stopped while it
      // holds the lock.
      let asked!: () => void
      const refreshSent = new Promise<void>((resolve) => (asked = resolve))
      const connections = new Set<Socket>()
      const silent: Server = createServer((socket) => {
        connections.add(socket)
        asked()
      })
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
      const address = silent.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      const url = `http://127.0.0.1:${port}`
      const file = JSON.parse(readFileSync(credentialsFile(), 'utf8')) as {
        servers: Record<string, Entry>
      }
      file.servers[url] = { ...file.servers[app.url]!, url }
      writeFileSync(credentialsFile(), JSON.stringify(file), { mode: 0o600 })
      let child: ChildProcess | undefined
      try {
        child = spawn(process.execPath, ['bin/tessera.cjs', 'user', 'whoami'], {
          cwd: ROOT,
          env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env(url) },
          stdio: 'ignore',
        })
        const exited = new Promise<NodeJS.Signals | null>((resolve) =>
          child!.once('exit', (_code, signal) => resolve(signal)),
        )
        // The refresh request leaves only once the lock is fully taken.
        await refreshSent
        expect(statSync(lockDir()).mode & 0o777).toBe(0o700)
        child.kill('SIGINT')
        expect(await exited).toBe('SIGINT')
        expect(existsSync(lockDir())).toBe(false)
      } finally {
        child?.kill('SIGKILL')
        // close() waits for every connection, and the unanswered refresh's may still be open
        // (on Node 24 the test hung here): drop them first.
        for (const socket of connections) socket.destroy()
        await new Promise((resolve) => silent.close(resolve))
      }
    })
  })
}
