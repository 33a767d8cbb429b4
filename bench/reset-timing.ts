/**
 * `npm run build && npx tsx bench/reset-timing.ts [scenario] [pairs] [repo]`: does an answer's
 * time tell whether an address has an account? Starts the compiled server (`node bin/tessera.cjs
 * serve` in `repo`, default this one) on a fresh SQLite file with the rate limits relaxed,
 * registers one account, then sends the scenario's two kinds of request one at a time,
 * alternated (the order flips every pair), and prints p10/p50/p90 of each kind and the median of
 * the pairs' differences. On a loaded machine only the comparison within one run means anything
 * (docs/performance.md); `control` compares two unknown addresses, to show the run's noise.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const [scenario = 'forgot', pairsArg = '2000', repoArg] = process.argv.slice(2)
const repo = repoArg ?? join(dirname(fileURLToPath(import.meta.url)), '..')
const pairs = Number(pairsArg)
const PASSWORD = 'benchmark lantern orbit 42'
const RELAXED = [
  'LOGIN_PER_IP',
  'LOGIN_PER_ACCOUNT',
  'REGISTER_PER_IP',
  'EMAIL_PER_ADDRESS',
  'PASSWORD_RESET_PER_ADDRESS',
  'PASSWORD_RESET_PER_IP',
]

type Request = [path: string, body: Record<string, string>]
const known = `known-${process.pid}@example.org`
const unknown = `nobody-${process.pid}@example.org`
let fresh = 0
const SCENARIOS: Record<string, [string, () => Request][]> = {
  forgot: [
    ['an account', () => ['/v1/user/auth/password/forgot', { email: known }]],
    ['no account', () => ['/v1/user/auth/password/forgot', { email: unknown }]],
  ],
  control: [
    ['no account A', () => ['/v1/user/auth/password/forgot', { email: `a-${unknown}` }]],
    ['no account B', () => ['/v1/user/auth/password/forgot', { email: unknown }]],
  ],
  verify: [
    ['unverified account', () => ['/v1/user/email/verify/send', { email: known }]],
    ['no account', () => ['/v1/user/email/verify/send', { email: unknown }]],
  ],
  login: [
    ['wrong password', () => ['/v1/user/auth/login', { email: known, password: 'wrong-one-1' }]],
    ['no account', () => ['/v1/user/auth/login', { email: unknown, password: 'wrong-one-1' }]],
  ],
  register: [
    ['taken', () => ['/v1/user/auth/register', { email: known, password: PASSWORD }]],
    [
      'free',
      () => ['/v1/user/auth/register', { email: `f${fresh++}${unknown}`, password: PASSWORD }],
    ],
  ],
}
const kinds = SCENARIOS[scenario]
if (kinds === undefined) throw new Error(`scenario: one of ${Object.keys(SCENARIOS).join(', ')}`)

const dir = mkdtempSync(join(tmpdir(), 'tessera-reset-timing-'))
const port = 20_000 + Math.floor(Math.random() * 20_000)
const server = spawn(process.execPath, ['bin/tessera.cjs', 'serve'], {
  cwd: repo,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: {
    ...process.env,
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: `sqlite:${join(dir, 'tessera.db')}`,
    MAIL_OUTBOX_DIR: join(dir, 'outbox'),
    LOG_LEVEL: 'warn',
    ...Object.fromEntries(RELAXED.map((name) => [`RATE_LIMIT_${name}`, '1000000000'])),
  },
})
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

function post([path, body]: Request): Promise<number> {
  const data = JSON.stringify(body)
  const headers = { 'content-type': 'application/json', 'content-length': data.length }
  return new Promise((resolve, reject) => {
    const req = http.request({ port, path, method: 'POST', agent, headers }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject).end(data)
  })
}

try {
  for (let i = 0; ; i++) {
    try {
      await post(['/health', {}])
      break
    } catch (error) {
      if (i > 300) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  if ((await post(['/v1/user/auth/register', { email: known, password: PASSWORD }])) !== 201) {
    throw new Error('the account could not be registered')
  }
  const samples: number[][] = [[], []]
  const statuses = [new Set<number>(), new Set<number>()]
  const differences: number[] = []
  const warmUp = Math.min(200, Math.floor(pairs / 5))
  for (let i = 0; i < warmUp + pairs; i++) {
    const took = [0, 0]
    for (const k of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const start = process.hrtime.bigint()
      const status = await post(kinds[k]![1]())
      took[k] = Number(process.hrtime.bigint() - start) / 1e6
      statuses[k]!.add(status)
    }
    if (i < warmUp) continue
    samples[0]!.push(took[0]!)
    samples[1]!.push(took[1]!)
    differences.push(took[0]! - took[1]!)
  }
  const at = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.floor(p * (xs.length - 1))]!.toFixed(3)
  for (const k of [0, 1]) {
    const xs = samples[k]!
    console.log(
      `${scenario}, ${kinds[k]![0].padEnd(18)} status ${[...statuses[k]!].join('/')}: ` +
        `p10 ${at(xs, 0.1)}  p50 ${at(xs, 0.5)}  p90 ${at(xs, 0.9)} ms (${xs.length})`,
    )
  }
  console.log(`${scenario}, median of the pairs' differences: ${at(differences, 0.5)} ms`)
} finally {
  server.kill('SIGTERM')
  await new Promise((resolve) => server.once('exit', resolve))
  rmSync(dir, { recursive: true, force: true })
}
