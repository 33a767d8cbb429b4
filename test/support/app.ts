import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Env, loadConfig } from '../../src/config/index.js'
import type { Logger } from '../../src/logger.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { freePort } from './browser.js'
import { createTestDatabase, type TestDatabase } from './database.js'
import type { Dialect } from './dialects.js'
import { requestTo } from './http.js'

export interface TestClock {
  (): number
  set(ms: number): void
  advance(ms: number): void
}

/** A clock tests move by hand. Starts at the real time so rate-limit windows stay sensible. */
export function testClock(start = Date.now()): TestClock {
  let now = start
  const clock = (() => now) as TestClock
  clock.set = (ms) => {
    now = ms
  }
  clock.advance = (ms) => {
    now += ms
  }
  return clock
}

export interface TestApp {
  url: string
  /** TESSERA_ISSUER as the app runs with it. */
  issuer: string
  server: RunningServer
  clock: TestClock
  databaseUrl: string
  /** fetch against the app; a JSON body is serialised and its content type set. */
  request(path: string, init?: RequestInit & { json?: unknown; token?: string }): Promise<Response>
  close(): Promise<void>
}

export interface TestAppOptions {
  dialect?: Dialect
  /**
   * Serve this database instead of a fresh one (the caller drops it): a restart of the server on
   * what an earlier one left.
   */
  database?: TestDatabase
  env?: Env
  clock?: TestClock
  /** Instead of LOG_LEVEL=silent, e.g. a pino logger writing to memory. */
  logger?: Logger
  /**
   * Hash passwords with the configured (production) argon2 cost. Off by default: tests that are
   * not about hashing use cheap argon2id parameters so the suite stays fast.
   */
  realHashing?: boolean
  /** Heartbeat period of revocation streams instead of 15 s. */
  revocationHeartbeatMs?: number
  /** How often the mail sender looks at its queue instead of every second. */
  mailPollMs?: number
  /**
   * Serve on a free port with TESSERA_ISSUER `http://<issuerHost>:<port>`, the app's own address:
   * for browsers, which the pages redirect to the issuer. `localhost` where WebAuthn needs a
   * secure context (Chromium counts `http://localhost` as one).
   */
  issuerHost?: string
}

/**
 * PostgreSQL refuses to start without a key-encryption key (README, "Keys"); tests on it use this
 * one unless they set their own. SQLite tests keep the default: a key generated beside the file.
 */
export const TEST_KEY_ENCRYPTION_KEY = 'test-key-encryption-key-not-for-production-use'

/** The key-encryption variables a test server on `databaseUrl` needs when the test sets none. */
export function testKeyEnv(databaseUrl: string, env: Env = {}): Env {
  if (
    !databaseUrl.startsWith('postgres') ||
    env.KEY_ENCRYPTION_KEY !== undefined ||
    env.KEY_ENCRYPTION_KEY_FILE !== undefined
  ) {
    return {}
  }
  return { KEY_ENCRYPTION_KEY: TEST_KEY_ENCRYPTION_KEY }
}

/** Real argon2id, at a cost that takes well under a millisecond. */
export const FAST_HASHING = Object.freeze({ memoryKiB: 64, timeCost: 1, parallelism: 1 })

/** The real server on a loopback port over a fresh real database. */
export async function makeTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const owned = options.database === undefined
  const database = options.database ?? (await createTestDatabase(options.dialect ?? 'sqlite'))
  const clock = options.clock ?? testClock()
  // Mail without SMTP_URL goes to an outbox folder (README, "Mail"): a temporary one, not ./data.
  const outbox = join(tmpdir(), `tessera-outbox-${randomBytes(6).toString('hex')}`)
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: database.url,
    LOG_LEVEL: 'silent',
    MAIL_OUTBOX_DIR: outbox,
    ...testKeyEnv(database.url, options.env),
    ...(options.issuerHost === undefined ? {} : await ownIssuer(options.issuerHost)),
    ...options.env,
  })
  let server: RunningServer
  try {
    server = await startServer(config, {
      clock,
      logger: options.logger,
      revocationHeartbeatMs: options.revocationHeartbeatMs,
      mailPollMs: options.mailPollMs,
      ...(options.realHashing === true ? {} : { passwordHashing: FAST_HASHING }),
    })
  } catch (error) {
    if (owned) await database.drop()
    throw error
  }
  const url = server.url
  return {
    url,
    issuer: config.issuer,
    server,
    clock,
    databaseUrl: database.url,
    request: requestTo(url),
    async close() {
      await server.close()
      if (owned) await database.drop()
      rmSync(outbox, { recursive: true, force: true })
    },
  }
}

async function ownIssuer(host: string): Promise<Env> {
  const port = await freePort()
  return { PORT: String(port), TESSERA_ISSUER: `http://${host}:${port}` }
}
