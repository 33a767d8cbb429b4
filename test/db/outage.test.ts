/**
 * The database going away under a running server (README "Database outages"): the server closes
 * one connection (`pg_terminate_backend`, as a restart, failover, `idle_session_timeout` or a
 * pooler restart does), or stops altogether and comes back. The process must stay up, answer 503
 * problem+json while the database is gone (never hang, never 500), say so at /ready, and serve
 * again once the database is back. The server runs as its own process: "the process exits" is
 * only faithful there. PostgreSQL only: these failures do not exist for an in-process SQLite file.
 */
import { execFileSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { TEST_POSTGRES_URL } from '../support/postgres.js'
import { freePort, startTesseraProcess, type TesseraProcess } from '../support/process.js'
import { PASSWORD, type TokenPairBody, uniqueEmail } from '../support/users.js'

const CONNECT_TIMEOUT_S = 2
/**
 * A request that has not answered by then hangs (the server must answer within its connect
 * timeout).
 */
const HANG_MS = CONNECT_TIMEOUT_S * 1000 + 5_000
const CHAINS = 6

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Observed {
  status: number | 'hang' | 'network'
  body: string
  contentType: string | null
  retryAfter: string | null
}

async function observe(
  p: TesseraProcess,
  path: string,
  init: Parameters<TesseraProcess['request']>[1] = {},
) {
  try {
    const res = await p.request(path, { ...init, signal: AbortSignal.timeout(HANG_MS) })
    const observed: Observed = {
      status: res.status,
      body: await res.text(),
      contentType: res.headers.get('content-type'),
      retryAfter: res.headers.get('retry-after'),
    }
    return observed
  } catch (error) {
    const hang =
      error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
    return {
      status: hang ? 'hang' : 'network',
      body: String(error),
      contentType: null,
      retryAfter: null,
    } as Observed
  }
}

/**
 * Every answer is a success or a 503 service_unavailable problem with Retry-After; nothing else.
 */
function expectOnlyOkOr503(observed: Observed[]) {
  const bad = observed.filter((o) => {
    if (o.status === 200 || o.status === 201) return false
    if (o.status !== 503) return true
    return !(
      o.contentType?.startsWith('application/problem+json') === true &&
      (JSON.parse(o.body) as { code?: string }).code === 'service_unavailable' &&
      o.retryAfter !== null
    )
  })
  expect(bad).toEqual([])
}

async function account(p: TesseraProcess): Promise<{ email: string; tokens: TokenPairBody }> {
  const email = uniqueEmail('outage')
  const registered = await observe(p, '/v1/user/auth/register', {
    json: { email, password: PASSWORD },
  })
  expect(registered.status, registered.body).toBe(201)
  const login = await observe(p, '/v1/user/auth/login', { json: { email, password: PASSWORD } })
  expect(login.status, login.body).toBe(200)
  return { email, tokens: JSON.parse(login.body) as TokenPairBody }
}

/** Full round trips that touch the database: refresh, then /me with the new access token. */
async function expectServing(p: TesseraProcess, tokens: TokenPairBody): Promise<TokenPairBody> {
  const refreshed = await observe(p, '/v1/user/auth/refresh', {
    json: { refresh_token: tokens.refresh_token },
  })
  expect(refreshed.status, refreshed.body).toBe(200)
  const pair = JSON.parse(refreshed.body) as TokenPairBody
  const me = await observe(p, '/v1/user/me', { token: pair.access_token })
  expect(me.status, me.body).toBe(200)
  expect((await observe(p, '/ready')).status).toBe(200)
  return pair
}

/**
 * Chains of refresh + /me until stopped. A chain whose refresh did not succeed logs in again
 * rather than presenting that token a second time (a commit whose answer was lost would make
 * the retry a reuse, which is the refresh rule working, not what this test is about).
 */
function startLoad(p: TesseraProcess, accounts: { email: string; tokens: TokenPairBody }[]) {
  const observed: Observed[] = []
  let stopped = false
  const chains = accounts.map(async ({ email, tokens }) => {
    let pair: TokenPairBody | undefined = tokens
    while (!stopped) {
      if (pair === undefined) {
        const login = await observe(p, '/v1/user/auth/login', {
          json: { email, password: PASSWORD },
        })
        observed.push(login)
        if (login.status === 200) pair = JSON.parse(login.body) as TokenPairBody
        else await sleep(50)
        continue
      }
      const refreshed = await observe(p, '/v1/user/auth/refresh', {
        json: { refresh_token: pair.refresh_token },
      })
      observed.push(refreshed)
      if (refreshed.status !== 200) {
        pair = undefined
        await sleep(50)
        continue
      }
      pair = JSON.parse(refreshed.body) as TokenPairBody
      observed.push(await observe(p, '/v1/user/me', { token: pair.access_token }))
    }
  })
  return {
    observed,
    async stop() {
      stopped = true
      await Promise.all(chains)
      return observed
    },
  }
}

function watchExit(p: TesseraProcess) {
  const state = { exited: false }
  void p.exited.then(() => (state.exited = true))
  return state
}

const lostConnectionLines = (p: TesseraProcess) =>
  p.output().split('database connection lost').length - 1

/** Until the server has logged `count` lost connections, or has exited. */
async function untilLogged(p: TesseraProcess, count: number, exit: { exited: boolean }) {
  const deadline = Date.now() + 10_000
  while (lostConnectionLines(p) < count && !exit.exited && Date.now() < deadline) await sleep(50)
}

const postgres = dialects().includes('postgres')

describe.skipIf(!postgres)('pg_terminate_backend of pooled connections [postgres]', () => {
  const applicationName = `tessera-outage-${process.pid}`
  let database: TestDatabase
  let server: TesseraProcess
  let exit: { exited: boolean }
  let admin: pg.Client

  async function terminate(): Promise<number> {
    const { rows } = await admin.query<{ pid: number }>(
      'select pid from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()',
      [applicationName],
    )
    for (const { pid } of rows) await admin.query('select pg_terminate_backend($1)', [pid])
    return rows.length
  }

  /** Terminates the server's idle pooled connections (waiting up to 5 s for one); how many. */
  async function terminateIdle(): Promise<number> {
    const deadline = Date.now() + 5_000
    for (;;) {
      // Idle ones only: one that a background query (the revocation poll, the mail sender) is
      // using fails that query instead and logs nothing, so on a busy machine a test that
      // terminated every connection could find none of them idle.
      const { rows } = await admin.query<{ pid: number }>(
        `select pid from pg_stat_activity
          where application_name = $1 and state = 'idle' and pid <> pg_backend_pid()`,
        [applicationName],
      )
      if (rows.length > 0 || Date.now() > deadline) {
        for (const { pid } of rows) await admin.query('select pg_terminate_backend($1)', [pid])
        return rows.length
      }
      await sleep(50)
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase('postgres')
    admin = new pg.Client({ connectionString: TEST_POSTGRES_URL })
    await admin.connect()
    server = await startTesseraProcess({
      databaseUrl: database.url,
      env: {
        PGAPPNAME: applicationName,
        LOG_LEVEL: 'warn',
        DATABASE_CONNECT_TIMEOUT: String(CONNECT_TIMEOUT_S),
      },
    })
    exit = watchExit(server)
  })

  afterAll(async () => {
    await server?.stop()
    await admin?.end()
    await database?.drop()
  })

  it('survives the server closing its idle connections', async () => {
    // Logs each at warn and serves on.
    const { tokens } = await account(server)
    const terminated = await terminateIdle()
    expect(terminated).toBeGreaterThan(0)
    await untilLogged(server, terminated, exit)
    expect(exit.exited, server.output()).toBe(false)
    // Each idle one is logged; one that the mail sender or the revocation poll took between the
    // look and the termination fails that query instead and leaves the pool by that path.
    expect(lostConnectionLines(server)).toBeGreaterThanOrEqual(1)
    expect(lostConnectionLines(server)).toBeLessThanOrEqual(terminated)
    expect(server.output()).toContain('"code":"57P01"')
    await expectServing(server, tokens)
  })

  it('survives connections closed in the middle of a refresh and /me load', async () => {
    const accounts = await Promise.all(Array.from({ length: CHAINS }, () => account(server)))
    const load = startLoad(server, accounts)
    for (let round = 0; round < 4; round++) {
      await sleep(250)
      await terminate()
    }
    await sleep(250)
    const observed = await load.stop()
    expect(exit.exited, server.output()).toBe(false)
    expect(observed.filter((o) => o.status === 200).length).toBeGreaterThan(0)
    expectOnlyOkOr503(observed)
    expect(server.output()).not.toContain('unhandled error')
    await expectServing(server, (await account(server)).tokens)
  })
})

/** The newest PostgreSQL server binaries on this machine, if any. */
function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))
  return versions.length > 0 ? join(root, versions[0]!, 'bin') : undefined
}

const bin = postgresBin()
if (postgres && bin === undefined)
  console.warn(
    'outage.test.ts: no PostgreSQL binaries under /usr/lib/postgresql; ' +
      'the stop/start test is skipped',
  )

/**
 * A throwaway PostgreSQL cluster of our own: the machine's shared server serves other tests and
 * must never be stopped. initdb refuses to run as root, so as root it runs as `postgres`.
 */
class PrivateCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'tessera-pg-'))
  readonly data = join(this.dir, 'data')
  private readonly asRoot = process.getuid?.() === 0

  constructor(readonly port: number) {
    if (this.asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
      chownSync(this.dir, uid, gid)
    }
  }

  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  private run(tool: string, args: string[]) {
    const command = join(bin!, tool)
    const [file, argv] = this.asRoot
      ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
      : [command, args]
    execFileSync(file, argv, { stdio: 'pipe', timeout: 60_000 })
  }

  init() {
    this.run('initdb', ['-D', this.data, '-U', 'postgres', '-A', 'trust', '--no-sync'])
  }

  start() {
    const options = [
      `-p ${this.port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories=${this.dir}`,
      '-c fsync=off',
    ].join(' ')
    this.run('pg_ctl', ['-D', this.data, '-l', join(this.dir, 'log'), '-w', '-o', options, 'start'])
  }

  stop(mode: 'fast' | 'immediate' = 'fast') {
    this.run('pg_ctl', ['-D', this.data, '-m', mode, '-w', 'stop'])
  }

  destroy() {
    try {
      this.stop('immediate')
    } catch {
      // Not running.
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

describe.skipIf(!postgres || bin === undefined)(
  'the database stopped and started under load [postgres]',
  () => {
    let cluster: PrivateCluster
    let server: TesseraProcess
    let exit: { exited: boolean }

    beforeAll(async () => {
      cluster = new PrivateCluster(await freePort())
      cluster.init()
      cluster.start()
      server = await startTesseraProcess({
        databaseUrl: cluster.url,
        env: { LOG_LEVEL: 'warn', DATABASE_CONNECT_TIMEOUT: String(CONNECT_TIMEOUT_S) },
      })
      exit = watchExit(server)
    }, 90_000)

    afterAll(async () => {
      await server?.stop()
      cluster?.destroy()
    })

    it('answers 503 problem+json while the database is down', async () => {
      // And serves again once it is back.
      const accounts = await Promise.all(Array.from({ length: CHAINS }, () => account(server)))
      const load = startLoad(server, accounts)
      await sleep(300)
      cluster.stop('fast')

      // Down: every kind of request answers 503 (within the connect timeout: no hang), /ready too.
      const during = await Promise.all([
        observe(server, '/ready'),
        observe(server, '/v1/user/me', { token: accounts[0]!.tokens.access_token }),
        observe(server, '/v1/user/auth/login', {
          json: { email: accounts[0]!.email, password: PASSWORD },
        }),
        observe(server, '/v1/user/auth/register', {
          json: { email: uniqueEmail('outage'), password: PASSWORD },
        }),
      ])
      expect(during.map((o) => o.status)).toEqual([503, 503, 503, 503])
      expectOnlyOkOr503(during)
      await sleep(300)
      expect(exit.exited, server.output()).toBe(false)

      cluster.start()
      const deadline = Date.now() + 20_000
      while ((await observe(server, '/ready')).status !== 200) {
        expect(Date.now() < deadline, 'not ready again within 20 s').toBe(true)
        await sleep(100)
      }
      await sleep(300)
      const observed = await load.stop()
      expect(exit.exited, server.output()).toBe(false)
      expectOnlyOkOr503(observed)
      expect(observed.some((o) => o.status === 503)).toBe(true)
      expect(server.output()).not.toContain('unhandled error')
      await expectServing(server, (await account(server)).tokens)
    })
  },
)
