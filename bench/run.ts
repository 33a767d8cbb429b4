/**
 * `npm run bench`: starts the compiled server as its own process on a temporary SQLite database,
 * and its peers in their own processes (bench/peers: panva's oidc-provider, a Hono hello world),
 * and loads each with autocannon from another process (bench/load.ts), Tessera's and the peer's
 * runs interleaved round by round. Absolute rates drift between runs on shared machines; the
 * ratios, taken side by side in one run, are the figures that count (docs/performance.md).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import { createServer } from 'node:net'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { CHECKPOINTER_QUIET_MS, connectDatabase } from '../src/db/connect.js'
import { recordRevocation } from '../src/revocations/log.js'
import type { LoadJob, LoadResult } from './load.js'
import { measureRevocationDelivery, measureVerifyWithRevocations } from './revocation.js'
import { measureStorage } from './storage.js'
import { measureVerifyRatio } from './verify-ratio.js'

const DURATION = Number(process.env.BENCH_SECONDS ?? 8)
const CONNECTIONS = 50
const PASSWORD = 'benchmark lantern orbit 42'
const SERVICE_SECRET = 'bench-service-secret-0123456789'
const LOAD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'load.ts')
const ARGON2_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'argon2-rate.ts')
const LIVE_REVOCATIONS = 100_000
/** Interleaved rounds per side-by-side figure (Tessera, peer, Tessera, peer, ...). */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
const PEERS = join(dirname(fileURLToPath(import.meta.url)), 'peers')
/**
 * The figures to run, by name (BENCH_ONLY=health,authz; unset: all): verify, verify-revocations,
 * ready (start-up and idle RSS), refresh, me, introspect, authz, health, authz-revocations, forgot,
 * login, postgres, delivery, storage. Ratios are only comparable within one run.
 */
const ONLY = process.env.BENCH_ONLY?.split(',').map((name) => name.trim())
const FIGURES = [
  'verify',
  'verify-revocations',
  'ready',
  'refresh',
  'me',
  'introspect',
  'authz',
  'health',
  'authz-revocations',
  'forgot',
  'login',
  'postgres',
  'delivery',
  'storage',
] as const
for (const name of ONLY ?? []) {
  if (!(FIGURES as readonly string[]).includes(name)) {
    throw new Error(`BENCH_ONLY: no figure "${name}" (figures: ${FIGURES.join(', ')})`)
  }
}
const runs = (figure: (typeof FIGURES)[number]) => ONLY === undefined || ONLY.includes(figure)

interface Row {
  figure: string
  rate: number
  p99?: number
  /** The baseline's or peer's rate in the same run, interleaved with this one. */
  peer?: number
  ratio?: number
  target?: string
  met?: boolean
}
const rows: Row[] = []

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

async function startServer(
  databaseUrl?: string,
  existingDir?: string,
): Promise<{
  url: string
  child: ChildProcess
  readyMs: number
  /** The process's CPU time (user and system) until that first 200 from /ready. */
  readyCpuMs: number
  dir: string
}> {
  const dir = existingDir ?? mkdtempSync(join(tmpdir(), 'tessera-bench-'))
  const port = await freePort()
  const started = performance.now()
  // Started the way `npm start` and the Dockerfile start it (README, "Benchmarks": the flags).
  const child = spawn(process.execPath, ['--max-semi-space-size=2', 'bin/tessera.cjs', 'serve'], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl ?? `sqlite:${join(dir, 'bench.db')}`,
      LOG_LEVEL: 'silent',
      RATE_LIMIT_LOGIN_PER_IP: '0',
      RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
      RATE_LIMIT_REGISTER_PER_IP: '0',
      // The refresh figure rotates one session thousands of times a second.
      RATE_LIMIT_REFRESH_PER_SESSION: '0',
      // The reset figures send one address thousands of requests: over its budget a request
      // answers alike but queues no mail, which is not the work being compared.
      RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS: '0',
      RATE_LIMIT_PASSWORD_RESET_PER_IP: '0',
      SERVICE_SECRET,
      ARGON2_MAX_QUEUE: '100000',
      // Replicas on PostgreSQL share their signing keys, encrypted with this key.
      KEY_ENCRYPTION_KEY: 'bench-key-encryption-key-not-for-production-use',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`)
    try {
      if ((await fetch(`${url}/ready`)).ok) break
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  const readyMs = performance.now() - started
  return { url, child, readyMs, readyCpuMs: cpuMs(child.pid!), dir }
}

/** A process's CPU time so far (user and system), in milliseconds. */
function cpuMs(pid: number): number {
  return cpuSeconds([pid]) * 1000
}

/**
 * Start-up, twice: on a new SQLite database (migrations and the first signing key) and again on
 * the same file (nothing to migrate), each from spawning `tessera serve` to its first 200 from
 * /ready; the CPU time beside it says how much of the wall time was the machine's other load.
 */
async function measureStartUp(): Promise<void> {
  const fresh = await startServer()
  await stop(fresh.child)
  const existing = await startServer(undefined, fresh.dir)
  await stop(existing.child)
  rmSync(fresh.dir, { recursive: true, force: true })
  for (const [which, s] of [
    ['a new database', fresh],
    ['an existing database', existing],
  ] as const) {
    value(`process start to /ready, ${which} (ms)`, s.readyMs, '< 500')
    rows.push({ figure: `  the same, CPU time of the process (ms)`, rate: s.readyCpuMs })
  }
}

/** Writes `count` session revocations into the bench server's database, 1000 a transaction. */
async function addRevocations(dir: string, count: number): Promise<void> {
  const database = await connectDatabase(`sqlite:${join(dir, 'bench.db')}`)
  try {
    for (let i = 0; i < count; i += 1000) {
      await recordRevocation(
        database.db,
        Date.now,
        Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
          kind: 'session' as const,
          sessionId: `bench-${i + j}`,
        })),
      )
    }
  } finally {
    await database.close()
  }
}

/** Until the server's copy of the log holds `count` entries (its `tessera_revocations_live`). */
async function waitForLiveRevocations(base: string, count: number): Promise<void> {
  for (;;) {
    const metrics = await (await fetch(`${base}/metrics`)).text()
    const live = Number(/^tessera_revocations_live (\d+)/m.exec(metrics)?.[1] ?? 0)
    if (live >= count) return
    await new Promise((r) => setTimeout(r, 100))
  }
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

async function json(url: string, body: unknown, token?: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(body),
  })
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`)
  return res.status === 204 ? undefined : ((await res.json()) as Record<string, string>)
}

/** Runs one autocannon job in a child process (bench/load.ts). */
function load(
  job: Omit<LoadJob, 'connections' | 'duration'> & Partial<LoadJob>,
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', LOAD_SCRIPT], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')))
    child.on('error', reject)
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as LoadResult)
        : reject(new Error(`load generator exited with ${code}`)),
    )
    child.stdin.end(JSON.stringify({ connections: CONNECTIONS, duration: DURATION, ...job }))
  })
}

function record(figure: string, result: LoadResult, baseline?: number, target?: string): number {
  if (result.errors > 0) console.error(`  ${figure}: ${result.errors} non-2xx/errors`)
  const { rate, p99 } = result
  rows.push({
    figure,
    rate,
    p99,
    ...(baseline ? { ratio: rate / baseline } : {}),
    ...(target ? { target } : {}),
  })
  return rate
}

/** `≥ x` or `< x` against a figure. */
function meets(value: number, target: string): boolean {
  const [op, bound] = target.split(' ') as [string, string]
  return op === '≥' ? value >= Number(bound) : value < Number(bound)
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length
}

/**
 * One side-by-side figure: `ROUNDS` interleaved rounds (Tessera, then the peer, then Tessera...)
 * so that drift in the machine's load falls on both alike; the ratio is of the mean rates.
 */
async function sideBySide(
  figure: string,
  ours: () => Promise<LoadResult>,
  peer: () => Promise<LoadResult>,
  /** Unset: a figure that explains another, with no target of its own. */
  target?: string,
): Promise<{ ours: number; peer: number }> {
  const a: LoadResult[] = []
  const b: LoadResult[] = []
  for (let round = 0; round < ROUNDS; round++) {
    a.push(await ours())
    b.push(await peer())
  }
  for (const [side, results] of [
    ['Tessera', a],
    ['peer', b],
  ] as const) {
    const errors = results.reduce((n, r) => n + r.errors, 0)
    if (errors > 0) console.error(`  ${figure} (${side}): ${errors} non-2xx/errors`)
  }
  const rate = mean(a.map((r) => r.rate))
  const peerRate = mean(b.map((r) => r.rate))
  const ratio = rate / peerRate
  rows.push({
    figure,
    rate,
    p99: Math.max(...a.map((r) => r.p99)),
    peer: peerRate,
    ratio,
    ...(target === undefined ? {} : { target, met: meets(ratio, target) }),
  })
  return { ours: rate, peer: peerRate }
}

/** A peer (bench/peers) in its own process; resolves with the JSON line it prints when ready. */
function startPeer<T>(
  script: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; info: T }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PEERS, script)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8')
      // oidc-provider prints its development warnings on stdout: the answer is the JSON line.
      const line = out.split('\n').find((l) => l.startsWith('{') && l.endsWith('}'))
      if (line !== undefined) resolve({ child, info: JSON.parse(line) as T })
    })
    child.on('error', reject)
    child.on('exit', (code) => reject(new Error(`peer ${script} exited with ${code}`)))
  })
}

interface OidcPeer {
  url: string
  clientId: string
  clientSecret: string
  refreshTokens: string[]
  accessToken: string
}

/** A live refresh token pool that rounds continue with, topped up by `mint` when it runs low. */
function tokenPool(mint: () => Promise<string>, initial: string[] = []) {
  let tokens = [...initial]
  return {
    async take(count: number): Promise<string[]> {
      while (tokens.length < count) tokens.push(await mint())
      const taken = tokens.slice(0, count)
      tokens = tokens.slice(count)
      return taken
    },
    giveBack(result: LoadResult): LoadResult {
      tokens.push(...(result.refreshTokens ?? []))
      return result
    },
  }
}

/**
 * Does a reset request's answer take longer for an account than for an address without one
 * (README, "Password reset")? One request at a time on one kept-alive connection, the two kinds
 * alternated with the order flipped every pair, so both see the same machine; the ratio is of
 * the medians. Throughput would not tell: the account's work runs after the answers in the same
 * process, and a phase's backlog would land on the next one (bench/reset-timing.ts has the other
 * enumeration-resistant answers).
 */
async function measureResetAnswers(base: string): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const { hostname: host, port } = new URL(base)
  const post = (email: string) =>
    new Promise<number>((resolve, reject) => {
      const body = JSON.stringify({ email })
      const headers = { 'content-type': 'application/json', 'content-length': body.length }
      const path = '/v1/user/auth/password/forgot'
      const start = process.hrtime.bigint()
      http
        .request({ host, port, path, method: 'POST', agent, headers }, (res) => {
          res.resume().on('end', () => {
            if (res.statusCode !== 202) reject(new Error(`forgot answered ${res.statusCode}`))
            else resolve(Number(process.hrtime.bigint() - start) / 1e3)
          })
        })
        .on('error', reject)
        .end(body)
    })
  const kinds = ['bench@example.org', 'nobody@example.org']
  const took: [number[], number[]] = [[], []]
  const pairs = 2000
  for (let i = -200; i < pairs; i++) {
    for (const k of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const ms = await post(kinds[k]!)
      if (i >= 0) took[k as 0 | 1].push(ms)
    }
  }
  agent.destroy()
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const [account, none] = took.map(median) as [number, number]
  rows.push({ figure: 'POST …/password/forgot one at a time, an account (p50 µs)', rate: account })
  const ratio = none / account
  rows.push({
    figure: 'the same, an address without an account (p50 µs; ratio to an account)',
    rate: none,
    ratio,
    target: '0.9–1.1',
    met: ratio >= 0.9 && ratio <= 1.1,
  })
}

/** bench/argon2-rate.ts in its own process, with the server's thread-pool size. */
function argon2Rate(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ARGON2_SCRIPT], {
      env: { ...process.env, UV_THREADPOOL_SIZE: String(availableParallelism()) },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')))
    child.on('error', reject)
    child.on('exit', (code) =>
      code === 0 ? resolve(Number(out)) : reject(new Error(`argon2-rate exited with ${code}`)),
    )
  })
}

/** How long the server sits without a request before its idle RSS is read. */
const IDLE_AFTER_MS = CHECKPOINTER_QUIET_MS + 2500

async function main(): Promise<void> {
  const machine = `${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()}`
  console.log(`Tessera benchmark: ${machine}, Node ${process.version}, ${DURATION} s per figure`)
  if (runs('verify')) {
    const verify = await measureVerifyRatio()
    rows.push({ figure: 'crypto.verify (node:crypto, 1 core)', rate: verify.raw })
    rows.push({
      figure: 'tessera/verify verifyAccessToken',
      rate: verify.ours,
      ratio: verify.ratio,
      target: '≥ 0.9',
    })
  }

  if (runs('verify-revocations')) {
    const withRevocations = await measureVerifyWithRevocations(LIVE_REVOCATIONS)
    // Its own raw figure: crypto.verify drifts between the two measurements on a shared machine.
    rows.push({
      figure: 'tessera/verify createVerifier, no revocation feed',
      rate: withRevocations.withoutFeed,
      ratio: withRevocations.withoutFeedRatio,
    })
    rows.push({
      figure: 'tessera/verify createVerifier, 100,000 live revocations',
      rate: withRevocations.ours,
      ratio: withRevocations.ratio,
      target: '≥ 0.9',
    })
  }

  if (runs('ready')) await measureStartUp()
  const hello = await startPeer<{ url: string }>('hello.ts')
  const helloWithHeaders = runs('health')
    ? await startPeer<{ url: string }>('hello.ts', { HELLO_HEADERS: 'tessera' })
    : undefined
  const helloWithRequestId = runs('health')
    ? await startPeer<{ url: string }>('hello.ts', { HELLO_HEADERS: 'request-id' })
    : undefined
  const oidc = await startPeer<OidcPeer>('oidc-provider.ts')
  const peer = oidc.info
  const server = await startServer()
  let sqliteRefresh = 0
  try {
    // Idle: no request since start, past the checkpointer's quiet time (the migrations wrote the
    // WAL, so it ran), as a server between bursts sits (docs/performance.md, "Idle memory").
    await new Promise((r) => setTimeout(r, runs('ready') ? IDLE_AFTER_MS : 500))
    if (runs('ready')) value('idle RSS (MB)', rssMb(server.child.pid!), '< 80')

    const base = server.url
    await json(`${base}/v1/user/auth/register`, { email: 'bench@example.org', password: PASSWORD })
    const logIn = async () =>
      (await json(`${base}/v1/user/auth/login`, {
        email: 'bench@example.org',
        password: PASSWORD,
      }))!
    const access = (await logIn()).access_token!
    const bearer = { authorization: `Bearer ${access}` }
    const peerBearer = { authorization: `Bearer ${peer.accessToken}` }
    const basic = Buffer.from(`${peer.clientId}:${peer.clientSecret}`).toString('base64')
    const peerClient = { authorization: `Basic ${basic}` }

    // Refresh: every request spends its token and gets a successor, on both sides.
    const ours = tokenPool(async () => (await logIn()).refresh_token!)
    const theirs = tokenPool(async () => {
      throw new Error('the oidc-provider peer ran out of refresh tokens')
    }, peer.refreshTokens)
    for (const connections of runs('refresh') ? [8, 50] : []) {
      const { ours: rate } = await sideBySide(
        `POST /v1/user/auth/refresh (c=${connections}) ÷ oidc-provider refresh grant, in-memory`,
        async () =>
          ours.giveBack(
            await load({ url: base, connections, refreshTokens: await ours.take(connections) }),
          ),
        async () =>
          theirs.giveBack(
            await load({
              url: peer.url,
              connections,
              refreshTokens: await theirs.take(connections),
              refreshGrant: {
                path: '/token',
                form: { grant_type: 'refresh_token' },
                headers: peerClient,
              },
            }),
          ),
        '≥ 1.3',
      )
      if (connections === CONNECTIONS) sqliteRefresh = rate
    }

    if (runs('me')) {
      await sideBySide(
        'GET /v1/user/me ÷ oidc-provider userinfo',
        () => load({ url: `${base}/v1/user/me`, headers: bearer }),
        () => load({ url: `${peer.url}/me`, headers: peerBearer }),
        '≥ 1.0',
      )
    }
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    if (runs('introspect')) {
      await sideBySide(
        'POST /v1/token/introspect ÷ oidc-provider introspection',
        () =>
          load({
            url: base,
            path: '/v1/token/introspect',
            method: 'POST',
            headers: { ...form, 'x-service-secret': SERVICE_SECRET },
            body: new URLSearchParams({ token: access }).toString(),
          }),
        () =>
          load({
            url: peer.url,
            path: '/token/introspection',
            method: 'POST',
            headers: { ...form, ...peerClient },
            body: new URLSearchParams({ token: peer.accessToken }).toString(),
          }),
        '≥ 1.2',
      )
    }
    const authzRate = async () => {
      const { ours } = await sideBySide(
        'GET /v1/authz (forward auth) ÷ Hono hello',
        () => load({ url: `${base}/v1/authz`, headers: bearer }),
        () => load({ url: hello.info.url }),
        '≥ 0.5',
      )
      return ours
    }
    const authz = runs('authz') || runs('authz-revocations') ? await authzRate() : 0
    if (runs('health')) {
      await sideBySide(
        'GET /health ÷ Hono hello',
        () => load({ url: `${base}/health` }),
        () => load({ url: hello.info.url }),
        '≥ 0.8',
      )
      // The same hello sending Tessera's response headers: what the headers' bytes cost apart
      // from Tessera's middleware (docs/performance.md, "/health: headers and middleware").
      await sideBySide(
        'GET /health ÷ Hono hello with the same response headers',
        () => load({ url: `${base}/health` }),
        () => load({ url: helloWithHeaders!.info.url }),
      )
      // The ceiling of the target above: the same hello with nothing but a request id on its
      // answers (docs/performance.md, "/health: the ceiling").
      await sideBySide(
        'Hono hello sending only a request id ÷ Hono hello',
        () => load({ url: helloWithRequestId!.info.url }),
        () => load({ url: hello.info.url }),
      )
    }
    if (runs('authz-revocations')) {
      // The same route while the server holds 100,000 live revocations (written into its database
      // by this process, as another replica or `tessera user disable` would): the ratio is to the
      // figure above, taken with none.
      await addRevocations(server.dir, LIVE_REVOCATIONS)
      await waitForLiveRevocations(base, LIVE_REVOCATIONS)
      record(
        'GET /v1/authz, 100,000 live revocations (ratio to none)',
        await load({ url: `${base}/v1/authz`, headers: bearer }),
        authz,
        '≥ 0.9',
      )
    }

    if (runs('forgot')) await measureResetAnswers(base)

    if (runs('login')) {
      const argon2 = await argon2Rate()
      rows.push({ figure: 'argon2id verify, raw, all cores (m=19456 t=2 p=1)', rate: argon2 })
      const loginBody = JSON.stringify({ email: 'bench@example.org', password: PASSWORD })
      // The probe is paced (100 req/s) so that it measures latency without stealing the CPU the
      // login flood needs.
      const [login, healthDuringFlood] = await Promise.all([
        load({
          url: `${base}/v1/user/auth/login`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: loginBody,
        }),
        load({ url: `${base}/health`, connections: 2, overallRate: 100 }),
      ])
      rows.push({
        figure: 'POST /v1/user/auth/login ÷ raw argon2id',
        rate: login.rate,
        p99: login.p99,
        peer: argon2,
        ratio: login.rate / argon2,
        target: '≥ 0.9',
        met: login.rate / argon2 >= 0.9,
      })
      value('GET /health p99 during the login flood (ms)', healthDuringFlood.p99, '< 10')
    }
  } finally {
    await Promise.all(
      [server, hello, oidc, helloWithHeaders, helloWithRequestId].map((p) =>
        p ? stop(p.child) : undefined,
      ),
    )
    rmSync(server.dir, { recursive: true, force: true })
  }

  if (runs('postgres')) await measurePostgresRefresh(sqliteRefresh)

  const delivery = runs('delivery') ? await measureRevocationDelivery() : undefined
  if (delivery !== undefined) {
    const n = delivery.revocations
    const latency = (figure: string, f: { p50: number; p99: number }, target: string) =>
      rows.push({ figure, rate: f.p50, p99: Math.round(f.p99), target })
    latency(
      `logout-all → rejection, verifier on the other replica's stream (p50 ms, ${n} total)`,
      delivery.notify,
      '< 1000 p99',
    )
    latency(
      'the same, replicas polling every 250 ms (REVOCATION_NOTIFY=false)',
      delivery.polledReplica,
      '< 1000 p99',
    )
    latency(
      `the same, verifier polling every ${delivery.pollIntervalMs} ms`,
      delivery.pollingVerifier,
      `< ${delivery.pollIntervalMs + 1000} p99`,
    )
  }

  // README, "Storage and retention": bounded rows per live session, a file that stops growing.
  let firstFileMb: number | undefined
  for (const f of runs('storage') ? await measureStorage() : []) {
    firstFileMb ??= f.fileMb
    rows.push({
      figure: `refresh_tokens rows per live session, day ${f.day} (${f.liveSessions} sessions)`,
      rate: f.perSession,
      target: '<= 20',
    })
    // Flat: within a tenth of the first day's size (pages are reused once pruning has started).
    rows.push({
      figure: `SQLite file size, day ${f.day} (MB)`,
      rate: f.fileMb,
      target: 'flat',
      met: f.fileMb <= firstFileMb * 1.1,
    })
  }
}

/** Whether a row meets its target: `≥ x`, `< x`, a range `a–b`, or `< x p99` (of its p99). */
function metOf(r: Row): boolean | undefined {
  if (r.met !== undefined || r.target === undefined) return r.met
  const value = r.ratio ?? r.rate
  const range = /^([\d.]+)–([\d.]+)$/.exec(r.target)
  if (range) return value >= Number(range[1]) && value <= Number(range[2])
  const p99 = /^< ([\d.]+) p99$/.exec(r.target)
  if (p99) return r.p99 !== undefined && r.p99 < Number(p99[1])
  return meets(value, r.target)
}

/** SIGTERM, then until the process has exited (its files can be removed then). */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}

/** A value with an absolute target (start-up, memory, a latency). */
function value(figure: string, rate: number, target: string): void {
  rows.push({ figure, rate, target, met: meets(rate, target) })
}

/** CPU seconds (user + system) of the live processes among `pids`, from /proc/<pid>/stat. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // utime and stime, fields 14 and 15 of proc(5), in clock ticks (USER_HZ, 100 on Linux).
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      // exited
    }
  }
  return ticks / 100
}

/**
 * Where one process's refresh rate goes (docs/performance.md, "Refresh on PostgreSQL"): one more
 * run on one replica, with the CPU its process and its database backends (by application_name)
 * spent per refresh. The database's share of a core at that rate says how far more replicas could
 * go when the database has cores of its own, which one 2-core machine cannot show directly.
 */
async function accountPostgresCpu(
  admin: pg.Client,
  applicationName: string,
  replica: { url: string; child: ChildProcess },
  tokens: string[],
  giveBack: (result: LoadResult) => LoadResult,
): Promise<void> {
  const backends = async () =>
    (
      await admin.query<{ pid: number }>(
        'select pid from pg_stat_activity where application_name = $1',
        [applicationName],
      )
    ).rows.map((row) => row.pid)
  const before = await backends()
  const start = new Map(before.map((pid) => [pid, cpuSeconds([pid])]))
  const serverStart = cpuSeconds([replica.child.pid!])
  const result = giveBack(await load({ url: replica.url, refreshTokens: tokens }))
  const after = await backends()
  const refreshes = result.rate * DURATION
  // A backend opened during the run counts from zero; one closed during it is missed (the pool
  // keeps its connections while they are busy, so neither happens under load).
  const opened = after.filter((pid) => !start.has(pid)).length
  let db = 0
  for (const pid of after) db += cpuSeconds([pid]) - (start.get(pid) ?? 0)
  const server = cpuSeconds([replica.child.pid!]) - serverStart
  const perRefresh = (seconds: number) => (seconds / refreshes) * 1e6
  rows.push({ figure: 'PostgreSQL refresh, 1 process, accounting run (req/s)', rate: result.rate })
  rows.push({
    figure: `  Tessera process CPU per refresh (µs)`,
    rate: perRefresh(server),
  })
  rows.push({
    figure: `  database backends' CPU per refresh (µs; ${after.length} backends, ${opened} new)`,
    rate: perRefresh(db),
  })
  rows.push({
    figure: '  database backends at that rate (% of one core)',
    rate: (db / DURATION) * 100,
  })
}

/**
 * Refresh on PostgreSQL: one Tessera process, then two replicas on the same schema with the load
 * split between them, interleaved; the one-process rate is also compared with SQLite's (c=50).
 * Needs BENCH_DATABASE_URL (default: TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/
 * test); skipped with a message when that server does not answer. On one small machine the
 * database shares the cores with the replicas and the load generators, so the replica ratio shows
 * what the machine allows (docs/performance.md, "PostgreSQL").
 */
async function measurePostgresRefresh(sqliteRate: number): Promise<void> {
  const adminUrl =
    process.env.BENCH_DATABASE_URL ??
    process.env.TEST_DATABASE_URL ??
    'postgres://postgres@127.0.0.1:5432/test'
  const admin = new pg.Client({ connectionString: adminUrl })
  try {
    await admin.connect()
  } catch (error) {
    console.error(`  PostgreSQL refresh skipped: ${(error as Error).message}`)
    return
  }
  const schema = `bench_${randomBytes(6).toString('hex')}`
  await admin.query(`create schema ${schema}`)
  const url = new URL(adminUrl)
  url.searchParams.set('options', `-c search_path=${schema}`)
  // Names the replicas' backends, whose CPU the accounting run below reads.
  url.searchParams.set('application_name', schema)
  const replicas: Awaited<ReturnType<typeof startServer>>[] = []
  try {
    replicas.push(await startServer(url.toString()))
    replicas.push(await startServer(url.toString()))
    const [one, two] = replicas as [(typeof replicas)[0], (typeof replicas)[0]]
    await json(`${one.url}/v1/user/auth/register`, {
      email: 'bench@example.org',
      password: PASSWORD,
    })
    const pool = tokenPool(
      async () =>
        (await json(`${one.url}/v1/user/auth/login`, {
          email: 'bench@example.org',
          password: PASSWORD,
        }))!.refresh_token!,
    )
    const half = CONNECTIONS / 2
    const { peer: single } = await sideBySide(
      'POST /v1/user/auth/refresh on PostgreSQL, 2 replicas ÷ 1 process',
      async () => {
        const [a, b] = await Promise.all(
          [one, two].map(async (replica) =>
            pool.giveBack(
              await load({
                url: replica.url,
                connections: half,
                refreshTokens: await pool.take(half),
              }),
            ),
          ),
        )
        return {
          rate: a!.rate + b!.rate,
          p99: Math.max(a!.p99, b!.p99),
          errors: a!.errors + b!.errors,
        }
      },
      async () =>
        pool.giveBack(await load({ url: one.url, refreshTokens: await pool.take(CONNECTIONS) })),
      '≥ 1.5',
    )
    await accountPostgresCpu(admin, schema, one, await pool.take(CONNECTIONS), pool.giveBack)
    if (sqliteRate > 0) {
      rows.push({
        figure: 'POST /v1/user/auth/refresh on PostgreSQL, 1 process ÷ SQLite (c=50)',
        rate: single,
        peer: sqliteRate,
        ratio: single / sqliteRate,
        target: '≥ 0.6',
        met: single / sqliteRate >= 0.6,
      })
    }
  } finally {
    await Promise.all(replicas.map((replica) => stop(replica.child)))
    await admin.query(`drop schema if exists ${schema} cascade`)
    await admin.end()
    for (const replica of replicas) rmSync(replica.dir, { recursive: true, force: true })
  }
}

/** The table of every figure measured, also after a failure (what ran before it is kept). */
function printRows(): void {
  console.log(
    '\n| figure | Tessera (req/s or value) | p99 ms | peer / baseline | ratio | target | met? |\n' +
      '|---|---|---|---|---|---|---|',
  )
  const fixed = (n: number) => n.toFixed(n < 100 ? 1 : 0)
  for (const r of rows) {
    const ratio = r.ratio === undefined ? '' : r.ratio.toFixed(2)
    const met = metOf(r) === undefined ? '' : metOf(r) ? '✓' : '✗'
    const peerRate = r.peer === undefined ? '' : fixed(r.peer)
    console.log(
      `| ${r.figure} | ${fixed(r.rate)} | ${r.p99 ?? ''} | ${peerRate} | ${ratio} | ` +
        `${r.target ?? ''} | ${met} |`,
    )
  }
}

try {
  await main()
} finally {
  printRows()
}
