import type { Kysely } from 'kysely'
import {
  type Argon2Params,
  createPasswordHasher,
  type PasswordHasher,
} from './accounts/password-hasher.js'
import { type Clock, systemClock } from './clock.js'
import type { Config } from './config/index.js'
import { connectDatabase, type DatabaseHandle } from './db/connect.js'
import { migrateOrThrow } from './db/migrate.js'
import type { Database } from './db/schema.js'
import { createFederationMetrics, type FederationMetrics } from './federation/metrics.js'
import { createProviderRegistry, type ProviderRegistry } from './federation/providers.js'
import { resolveKeyEncryptionKey } from './keys/key-encryption.js'
import { createKeyRing, type KeyRing } from './keys/key-ring.js'
import { encryptClearKeys, ensureActiveKey, readSecretPaserk } from './keys/signing-keys.js'
import { createLogger, type Logger } from './logger.js'
import { createMetrics, type Metrics } from './metrics.js'
import { createRateLimits, type RateLimits } from './rate-limit/limits.js'
import { createLiveRevocations, type LiveRevocations } from './revocations/live.js'
import { registerRevocationMetrics } from './revocations/metrics.js'

/** Everything the domain needs at run time, made once at start-up and passed down. */
export interface Tessera {
  config: Config
  database: DatabaseHandle
  db: Kysely<Database>
  clock: Clock
  hasher: PasswordHasher
  keys: KeyRing
  /** Enabled federated-login providers, with their discovery cached for this process. */
  federation: ProviderRegistry
  /** `tessera_federated_logins_total`, registered in `metrics.registry`. */
  federationMetrics: FederationMetrics
  limits: RateLimits
  logger: Logger
  /** Prometheus metrics of this instance, in its own registry (`GET /metrics`). */
  metrics: Metrics
  /**
   * This process's copy of the revocation log (`/v1/authz`, the event stream); the server starts
   * it (`startServer`), the command-line tools never do.
   */
  revocations: LiveRevocations
  close(): Promise<void>
}

export interface TesseraOptions {
  clock?: Clock
  logger?: Logger
  /**
   * argon2id parameters used instead of the configured ones, below the ARGON2_* floor. Only the
   * test app sets this (cheap hashes for tests that are not about hashing); no environment
   * variable reaches it.
   */
  passwordHashing?: Argon2Params
  /** Heartbeat period of revocation streams instead of 15 s. Only tests set this. */
  revocationHeartbeatMs?: number
  /** Milliseconds between the mail sender's looks at its queue instead of 1 s. Only tests. */
  mailPollMs?: number
}

/**
 * Opens the database, applies migrations and makes sure a signing key exists (fails fast if the
 * stored keys cannot be read with the key-encryption key). `config.keyEncryptionKey` of the result
 * is the key in use, configured or generated.
 */
export async function createTessera(
  configured: Config,
  options: TesseraOptions = {},
): Promise<Tessera> {
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? createLogger(configured.logLevel)
  const log = { info: (m: string) => logger.info(m), warn: (m: string) => logger.warn(m) }
  const database = await connectDatabase(configured.databaseUrl, {
    poolSize: configured.databasePoolSize,
    connectTimeoutMs: configured.databaseConnectTimeout * 1000,
    logger,
    onWarning: log.warn,
  })
  try {
    // After connecting, which made the SQLite data directory the key file goes into.
    const config = { ...configured, keyEncryptionKey: resolveKeyEncryptionKey(configured, log) }
    await migrateOrThrow(database.db)
    const keyDeps = { db: database.db, clock, config }
    const encrypted = await encryptClearKeys(keyDeps)
    if (encrypted > 0)
      logger.info(`encrypted ${encrypted} signing key(s) that were stored in clear`)
    const active = await ensureActiveKey(keyDeps)
    readSecretPaserk(keyDeps, active)
    const hasher = createPasswordHasher(options.passwordHashing ?? config.argon2, {
      maxConcurrent: config.argon2MaxConcurrency,
      maxQueued: config.argon2MaxQueue,
    })
    const metrics = createMetrics({ db: database.db, clock, hasher, logger })
    const federation = await createProviderRegistry(config.oauth)
    const revocations = createLiveRevocations({
      db: database.db,
      client: database.client,
      clock,
      config,
      logger,
      heartbeatMs: options.revocationHeartbeatMs,
    })
    registerRevocationMetrics(metrics.registry, revocations, clock)
    return {
      config,
      database,
      db: database.db,
      clock,
      hasher,
      keys: createKeyRing(keyDeps),
      federation,
      federationMetrics: createFederationMetrics(metrics.registry, federation.enabled()),
      limits: createRateLimits(database.client, config),
      logger,
      metrics,
      revocations,
      close: async () => {
        await revocations.close()
        metrics.close()
        return database.close()
      },
    }
  } catch (error) {
    await database.close()
    throw error
  }
}
