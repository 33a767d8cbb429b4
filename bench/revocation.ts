/**
 * The revocation part of `npm run bench` (docs/revocation.md, "Performance"; docs/performance.md):
 *
 * - `tessera/verify` holding 100,000 live revocation entries against a raw `crypto.verify`, in
 *   this process (the check must stay a hash lookup: ≥ 0.9);
 * - logout-all on one of two Tessera replicas on PostgreSQL → the first rejection at a verifier
 *   following the other replica's stream: p99 over 1,000 revocations, with the replicas learning
 *   of entries by LISTEN/NOTIFY (default) and by polling (REVOCATION_NOTIFY=false), and at a
 *   verifier polling every second (target: under the interval plus a second).
 *
 * Run alone with `npx tsx bench/revocation.ts` after `npm run build`. The PostgreSQL part needs
 * BENCH_DATABASE_URL (default: TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test)
 * and is skipped with a message when that server does not answer.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createPublicKey, verify as cryptoVerify, randomBytes, randomUUID } from 'node:crypto'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { v4PublicPreAuth } from '../src/paseto/pae.js'
import { encodePublicPaserk, publicKeyId } from '../src/paseto/paserk.js'
import { formatPasetoTime } from '../src/paseto/time.js'
import { pageOf, signFeedPage } from '../src/revocations/feed.js'
import type { RevocationEntry } from '../src/revocations/log.js'
import { generateSigningKeyPair, importSecretKey, signV4Public } from '../src/tokens/sign.js'
import { createVerifier, type Verifier } from '../src/verify/index.js'
import { alternatedRates } from './alternated.js'

const ISSUER = 'http://localhost:8000'
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const PASSWORD = 'benchmark lantern orbit 42'

/**
 * `createVerifier(...).verify` of a live token while the verifier holds `count` revoked sessions
 * (fed by its own poll of signed pages, as from Tessera), against raw `crypto.verify`.
 */
export async function measureVerifyWithRevocations(count = 100_000): Promise<{
  raw: number
  ours: number
  ratio: number
  /** The same verifier without a revocation feed: what the entries cost is the difference. */
  withoutFeed: number
  withoutFeedRatio: number
  entries: number
}> {
  const { publicKey, secretKey } = generateSigningKeyPair()
  const paserk = encodePublicPaserk(publicKey)
  const kid = publicKeyId(paserk)
  const secret = importSecretKey(secretKey)
  const now = Date.now()
  const token = await signV4Public(
    secret,
    {
      iss: ISSUER,
      sub: randomUUID(),
      aud: 'tessera',
      jti: randomUUID(),
      sid: randomUUID(),
      acct: 'regular',
      verified: false,
      email: 'a@example.org',
      iat: formatPasetoTime(now),
      nbf: formatPasetoTime(now),
      exp: formatPasetoTime(now + 900_000),
    },
    Buffer.from(JSON.stringify({ kid })),
  )
  const entries: RevocationEntry[] = Array.from({ length: count }, (_, i) => ({
    seq: i + 1,
    kind: i % 10 === 0 ? 'user' : 'session',
    subject: randomUUID(),
    at: now,
  }))
  const keys = { signer: async () => ({ kid, key: secret }), publicKey: async () => undefined }
  const deps = {
    keys: { ...keys, invalidate() {} },
    config: { issuer: ISSUER, accessTokenTtl: 900 },
  }
  // Tessera's feed, served from memory: pages of 1000 after the asked cursor.
  const feed: typeof fetch = async (input) => {
    const after = Number(new URL(String(input)).searchParams.get('after') ?? 0)
    const rows = entries.slice(after, after + 1001)
    const document = await signFeedPage(deps, pageOf(rows, after, Date.now()))
    return new Response(JSON.stringify({ document }), {
      headers: { 'content-type': 'application/json' },
    })
  }
  const verifier = createVerifier(
    { keys: [{ kid, paserk }] },
    {
      issuer: ISSUER,
      audience: 'tessera',
      fetch: feed,
      revocations: {
        poll: { intervalMs: 3_600_000 },
        url: 'http://tessera.invalid/v1/revocations',
      },
    },
  )
  await verifier.verify(token)
  const held = verifier.revocationStatus()!.entries
  if (held !== count) throw new Error(`the verifier holds ${held} entries, not ${count}`)

  const [, , payloadB64, footerB64] = token.split('.') as [string, string, string, string]
  const payload = Buffer.from(payloadB64, 'base64url')
  const signature = payload.subarray(-64)
  const pae = v4PublicPreAuth(
    payload.subarray(0, -64),
    Buffer.from(footerB64, 'base64url'),
    new Uint8Array(0),
  )
  const raw = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
    format: 'jwk',
  })
  const plain = createVerifier({ keys: [{ kid, paserk }] }, { issuer: ISSUER, audience: 'tessera' })
  const { rates, ratios } = await alternatedRates([
    () => cryptoVerify(null, pae, raw, signature),
    () => verifier.verify(token),
    () => plain.verify(token),
  ])
  verifier.close()
  return {
    raw: rates[0] as number,
    ours: rates[1] as number,
    ratio: ratios[1] as number,
    withoutFeed: rates[2] as number,
    withoutFeedRatio: ratios[2] as number,
    entries: held,
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

interface Replica {
  url: string
  child: ChildProcess
}

async function startReplica(databaseUrl: string, env: Record<string, string>): Promise<Replica> {
  const port = await freePort()
  const child = spawn(process.execPath, ['bin/tessera.cjs', 'serve'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      HOST: '127.0.0.1',
      // One issuer for every replica, the one the verifiers expect (it would follow PORT).
      TESSERA_ISSUER: ISSUER,
      DATABASE_URL: databaseUrl,
      KEY_ENCRYPTION_KEY: 'bench-key-encryption-key-not-for-production-use',
      LOG_LEVEL: 'silent',
      RATE_LIMIT_LOGIN_PER_IP: '0',
      RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
      RATE_LIMIT_REGISTER_PER_IP: '0',
      // Cheap hashes: the figure is about revocations, and 2,000 logins must not take minutes.
      ARGON2_MEMORY_KIB: '7168',
      ARGON2_TIME_COST: '1',
      ARGON2_MAX_QUEUE: '100000',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      if ((await fetch(`${url}/ready`)).ok) return { url, child }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('replica did not start')
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function post(url: string, body: unknown, token?: string): Promise<Record<string, string>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`)
  return res.status === 204 ? {} : ((await res.json()) as Record<string, string>)
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

/**
 * `users` logout-alls on `writer`, `concurrency` at a time; each latency is from sending the
 * logout-all to the first `revoked` from `verifier`, probed every `probeMs` (the probes' own
 * verifications share this process's CPU with the verifier, so they are kept few).
 */
async function logoutAllLatencies(
  writer: Replica,
  verifier: Verifier,
  users: Array<{ access: string }>,
  concurrency: number,
  probeMs: number,
  periodMs: number,
): Promise<{ p50: number; p99: number; max: number }> {
  const latencies: number[] = []
  let next = 0
  async function worker(): Promise<void> {
    for (let i = next++; i < users.length; i = next++) {
      const { access } = users[i]!
      await verifier.verify(access)
      // A pause spread over the poll period, so the logout-alls do not fall into step with it
      // (each would otherwise land just after a poll and wait almost a whole period).
      await new Promise((r) => setTimeout(r, Math.random() * periodMs))
      const started = performance.now()
      await post(`${writer.url}/v1/user/auth/logout-all`, undefined, access)
      for (;;) {
        try {
          await verifier.verify(access)
        } catch {
          break
        }
        await new Promise((r) => setTimeout(r, probeMs))
      }
      latencies.push(performance.now() - started)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  latencies.sort((a, b) => a - b)
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1)! }
}

export interface DeliveryFigures {
  /** Replica B learns by LISTEN/NOTIFY; the verifier follows B's stream. */
  notify: { p50: number; p99: number; max: number }
  /** Replica C polls the log every 250 ms; the verifier follows C's stream. */
  polledReplica: { p50: number; p99: number; max: number }
  /** The verifier polls B every `pollIntervalMs`. */
  pollingVerifier: { p50: number; p99: number; max: number }
  pollIntervalMs: number
  revocations: number
}

/** Undefined (with the reason printed) when no PostgreSQL server answers. */
export async function measureRevocationDelivery(
  revocations = 1000,
): Promise<DeliveryFigures | undefined> {
  const server =
    process.env.BENCH_DATABASE_URL ??
    process.env.TEST_DATABASE_URL ??
    'postgres://postgres@127.0.0.1:5432/test'
  const admin = new pg.Client({ connectionString: server, connectionTimeoutMillis: 3000 })
  try {
    await admin.connect()
  } catch (error) {
    console.error(`  revocation delivery skipped: PostgreSQL at ${server} (${String(error)})`)
    return undefined
  }
  const schema = `bench_${randomBytes(6).toString('hex')}`
  await admin.query(`create schema ${schema}`)
  const url = new URL(server)
  url.searchParams.set('options', `-c search_path=${schema}`)
  const replicas: Replica[] = []
  const verifiers: Verifier[] = []
  try {
    const a = await startReplica(url.toString(), {})
    replicas.push(a)
    const [b, c] = await Promise.all([
      startReplica(url.toString(), {}),
      startReplica(url.toString(), { REVOCATION_NOTIFY: 'false', REVOCATION_POLL_MS: '250' }),
    ])
    replicas.push(b, c)
    const emails: Array<{ email: string }> = []
    for (let i = 0; i < revocations; i += 50) {
      emails.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(50, revocations - i) }, async (_, j) => {
            const email = `bench-revocation-${i + j}@example.org`
            await post(`${a.url}/v1/user/auth/register`, { email, password: PASSWORD })
            return { email }
          }),
        )),
      )
    }
    const follow = (replica: Replica, revocationOptions: object) => {
      const verifier = createVerifier(
        { keysUrl: `${replica.url}/v1/keys` },
        {
          issuer: ISSUER,
          audience: 'tessera',
          revocations: revocationOptions as { stream: true },
        },
      )
      verifiers.push(verifier)
      return verifier
    }
    // Each figure: every user logs in afresh on A (a new session), then logs out everywhere.
    const run = async (verifier: Verifier, concurrency: number, probeMs: number, period: number) =>
      logoutAllLatencies(a, verifier, await loginAll(a, emails), concurrency, probeMs, period)
    const notify = await run(follow(b, { stream: true }), 4, 5, 50)
    const polledReplica = await run(follow(c, { stream: true }), 4, 5, 250)
    const pollIntervalMs = 1000
    // Each wait lasts up to the interval: more at once, or the figure would take many minutes;
    // probed less often, so 20 probing workers leave the verifier's own polls the CPU they need.
    const pollingVerifier = await run(
      follow(b, { poll: { intervalMs: pollIntervalMs } }),
      20,
      20,
      pollIntervalMs,
    )
    return { notify, polledReplica, pollingVerifier, pollIntervalMs, revocations }
  } finally {
    for (const verifier of verifiers) verifier.close()
    for (const replica of replicas) replica.child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    await admin.query(`drop schema if exists ${schema} cascade`)
    await admin.end()
  }
}

async function loginAll(
  replica: Replica,
  users: Array<{ email: string }>,
): Promise<Array<{ access: string }>> {
  const sessions: Array<{ access: string }> = []
  for (let i = 0; i < users.length; i += 50) {
    sessions.push(
      ...(await Promise.all(
        users.slice(i, i + 50).map(async ({ email }) => ({
          access: (
            await post(`${replica.url}/v1/user/auth/login`, { email, password: PASSWORD })
          ).access_token!,
        })),
      )),
    )
  }
  return sessions
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const verify = await measureVerifyWithRevocations()
  console.log(
    `crypto.verify ${verify.raw.toFixed(0)}/s, verify with ${verify.entries} revocations ` +
      `${verify.ours.toFixed(0)}/s (ratio ${verify.ratio.toFixed(3)}), without a feed ` +
      `${verify.withoutFeed.toFixed(0)}/s (${verify.withoutFeedRatio.toFixed(3)})`,
  )
  const delivery = await measureRevocationDelivery()
  if (delivery !== undefined) console.log(JSON.stringify(delivery, null, 2))
}
