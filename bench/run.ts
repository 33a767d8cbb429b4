/**
 * `npm run bench`: starts the compiled server as its own process on a temporary SQLite database
 * and loads it with autocannon from another process (bench/load.ts). Absolute rates drift between
 * runs on shared machines; the ratios, taken in one run, are the figures that count
 * (docs/performance.md).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connectDatabase } from '../src/db/connect.js'
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

interface Row {
  figure: string
  rate: number
  p99?: number
  ratio?: number
  target?: string
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

async function startServer(): Promise<{
  url: string
  child: ChildProcess
  readyMs: number
  dir: string
}> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'))
  const port = await freePort()
  const started = performance.now()
  // Started the way `npm start` and the Dockerfile start it (README, "Benchmarks": the flags).
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=1', '--no-concurrent-recompilation', 'bin/tessera.cjs', 'serve'],
    {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: `sqlite:${join(dir, 'bench.db')}`,
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
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  )
  const url = `http://127.0.0.1:${port}`
  for (;;) {
    try {
      if ((await fetch(`${url}/ready`)).ok) break
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  return { url, child, readyMs: performance.now() - started, dir }
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

async function main(): Promise<void> {
  const machine = `${cpus()[0]?.model ?? 'cpu'} x${availableParallelism()}`
  console.log(`Tessera benchmark: ${machine}, Node ${process.version}, ${DURATION} s per figure`)
  const verify = await measureVerifyRatio()
  rows.push({ figure: 'crypto.verify (node:crypto, 1 core)', rate: verify.raw })
  rows.push({
    figure: 'tessera/verify verifyAccessToken',
    rate: verify.ours,
    ratio: verify.ratio,
    target: '≥ 0.9',
  })

  const withRevocations = await measureVerifyWithRevocations(LIVE_REVOCATIONS)
  // Its own raw figure: crypto.verify drifts between the two measurements on a shared machine.
  rows.push({
    figure: 'tessera/verify createVerifier, no revocation feed',
    rate: withRevocations.withoutFeed,
    ratio: withRevocations.withoutFeed / withRevocations.raw,
  })
  rows.push({
    figure: 'tessera/verify createVerifier, 100,000 live revocations',
    rate: withRevocations.ours,
    ratio: withRevocations.ratio,
    target: '≥ 0.9',
  })

  const server = await startServer()
  try {
    await new Promise((r) => setTimeout(r, 500))
    rows.push({ figure: 'process start to /ready (ms)', rate: server.readyMs, target: '< 1000' })
    rows.push({ figure: 'idle RSS (MB)', rate: rssMb(server.child.pid!), target: '< 80' })

    const base = server.url
    await json(`${base}/v1/user/auth/register`, { email: 'bench@example.org', password: PASSWORD })
    const tokens = await json(`${base}/v1/user/auth/login`, {
      email: 'bench@example.org',
      password: PASSWORD,
    })
    const access = tokens!.access_token!

    const health = record('GET /health (baseline)', await load({ url: `${base}/health` }))
    const bearer = { authorization: `Bearer ${access}` }
    record(
      'GET /v1/user/me',
      await load({ url: `${base}/v1/user/me`, headers: bearer }),
      health,
      '≥ 0.3',
    )
    const authz = record(
      'GET /v1/authz (forward auth)',
      await load({ url: `${base}/v1/authz`, headers: bearer }),
      health,
      '≥ 0.3',
    )
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
    record(
      'POST /v1/token/introspect',
      await load({
        url: base,
        path: '/v1/token/introspect',
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-service-secret': SERVICE_SECRET,
        },
        body: new URLSearchParams({ token: access }).toString(),
      }),
      health,
    )

    // A reset request answers alike for an account and for no account (README, "Password
    // reset"): the same body, and the same work, which these two figures compare.
    const forgot = (email: string) =>
      load({
        url: `${base}/v1/user/auth/password/forgot`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email }),
        connections: 8,
      })
    const known = await forgot('bench@example.org')
    record('POST /v1/user/auth/password/forgot, an account (c=8)', known)
    record(
      'the same, an address without an account (ratio to an account)',
      await forgot('nobody@example.org'),
      known.rate,
      '0.9–1.1',
    )

    const refreshTokens: string[] = []
    for (let i = 0; i < CONNECTIONS; i++) {
      refreshTokens.push(
        (await json(`${base}/v1/user/auth/login`, {
          email: 'bench@example.org',
          password: PASSWORD,
        }))!.refresh_token!,
      )
    }
    record('POST /v1/user/auth/refresh', await load({ url: base, refreshTokens }), health, '≥ 0.2')

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
    record('POST /v1/user/auth/login', login, argon2, '≥ 0.9')
    rows.push({
      figure: 'GET /health p99 during the login flood (ms)',
      rate: healthDuringFlood.p99,
      target: '< 10',
    })
  } finally {
    server.child.kill('SIGTERM')
    rmSync(server.dir, { recursive: true, force: true })
  }

  const delivery = await measureRevocationDelivery()
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
  for (const f of await measureStorage()) {
    rows.push({
      figure: `refresh_tokens rows per live session, day ${f.day} (${f.liveSessions} sessions)`,
      rate: f.perSession,
      target: '<= 20',
    })
    rows.push({ figure: `SQLite file size, day ${f.day} (MB)`, rate: f.fileMb, target: 'flat' })
  }

  console.log(
    '\n| figure | rate (req/s or value) | p99 ms | ratio | target |\n|---|---|---|---|---|',
  )
  for (const r of rows) {
    const rate = r.rate.toFixed(r.rate < 100 ? 1 : 0)
    const ratio = r.ratio === undefined ? '' : r.ratio.toFixed(2)
    console.log(`| ${r.figure} | ${rate} | ${r.p99 ?? ''} | ${ratio} | ${r.target ?? ''} |`)
  }
}

await main()
