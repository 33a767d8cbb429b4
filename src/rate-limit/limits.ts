import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import type * as RateLimiterFlexible from 'rate-limiter-flexible'
import type { RateLimiterAbstract } from 'rate-limiter-flexible'
import type { Config } from '../config/index.js'
import type { DatabaseClient } from '../db/connect.js'
import { TesseraError } from '../errors.js'

// The package's index loads every store it supports (Redis, Mongo, DynamoDB, Etcd, ...), about 40
// modules of code Tessera never runs and a process would keep in memory. Its store modules load on
// their own.
const require = createRequire(import.meta.url)
const store = (name: string): unknown => require(`rate-limiter-flexible/lib/${name}.js`)
const RateLimiterSQLite = store('RateLimiterSQLite') as typeof RateLimiterFlexible.RateLimiterSQLite
const RateLimiterPostgres = store(
  'RateLimiterPostgres',
) as typeof RateLimiterFlexible.RateLimiterPostgres
const RateLimiterRes = store('RateLimiterRes') as typeof RateLimiterFlexible.RateLimiterRes
type RateLimiterRes = RateLimiterFlexible.RateLimiterRes

/**
 * A fixed-window counter kept in the database (rate-limiter-flexible over the `rate_limits`
 * table), so every replica sees the same counts.
 */
export interface Limiter {
  /** Counts one attempt; throws `rate_limited` once the window's allowance is used up. */
  consume(key: string): Promise<void>
  /**
   * Gives back the point of one consumed attempt, for limits that count only failures but must
   * count before the outcome is known (so parallel attempts cannot overrun them).
   */
  refund(key: string): Promise<void>
  reset(key: string): Promise<void>
}

export interface RateLimits {
  loginPerIp: Limiter
  /** Attempts on an account by clients without its device cookie (README "Passwords and login"). */
  loginPerAccount: Limiter
  /** Attempts from one known device (by its cookie's hash), apart from the account's budget. */
  loginPerDevice: Limiter
  /**
   * Wrong current passwords at `POST /v1/user/password`, per user: a budget of its own, so failed
   * logins by others never block the owner from changing the password.
   */
  passwordPerUser: Limiter
  registerPerIp: Limiter
  /**
   * Federated login, one counter per route so a complete flow costs one point of each: authorize
   * writes an `oauth_states` row, callback may call the provider, exchange probes login codes.
   */
  oauthAuthorizePerIp: Limiter
  oauthCallbackPerIp: Limiter
  oauthExchangePerIp: Limiter
  /** `POST /v1/oauth/device_authorization`: each request writes a row (RATE_LIMIT_OAUTH_PER_IP). */
  deviceAuthorizationPerIp: Limiter
  /**
   * Wrong user codes at the device verification page, per browser session and per address
   * (README, "Device login"): consumed before the code is looked up, refunded when it was right.
   */
  userCodePerSession: Limiter
  userCodePerIp: Limiter
  /**
   * Wrong second-factor codes per user (README, "Second factors"): consumed before the code is
   * checked, refunded when it was right.
   */
  mfaPerUser: Limiter
  /** Failed service-client authentications (README, "Service clients"): counted, never before. */
  clientAuthPerClient: Limiter
  clientAuthPerIp: Limiter
  /**
   * Verification and email-change mails (README, "Email verification and change"): per client
   * address (the registration budget's size) and per recipient address, hashed.
   */
  emailPerIp: Limiter
  emailPerAddress: Limiter
  /**
   * Password reset requests per address and per client (README, "Password reset"). Over the
   * address budget a request still answers 202 and sends nothing, so it never becomes a lockout.
   */
  passwordResetPerAddress: Limiter
  passwordResetPerIp: Limiter
  /** Wrong reset tokens per client, a budget as large as that of the requests. */
  passwordResetTokenPerIp: Limiter
}

const unlimited: Limiter = {
  consume: async () => {},
  refund: async () => {},
  reset: async () => {},
}

function rateLimited(res: RateLimiterRes): TesseraError {
  const retryAfter = Math.max(1, Math.ceil(res.msBeforeNext / 1000))
  return new TesseraError('rate_limited', `Too many attempts; try again in ${retryAfter} s`, {
    retryAfter,
  })
}

type Serialize = <T>(fn: () => Promise<T>) => Promise<T>

function limiter(store: RateLimiterAbstract, serialize: Serialize): Limiter {
  return {
    async consume(key) {
      try {
        await serialize(() => store.consume(key))
      } catch (error) {
        if (error instanceof RateLimiterRes) throw rateLimited(error)
        throw error
      }
    },
    async refund(key) {
      await serialize(() => store.reward(key, 1))
    },
    async reset(key) {
      await serialize(() => store.delete(key))
    },
  }
}

export function createRateLimits(
  client: DatabaseClient,
  config: Pick<Config, 'rateLimits'>,
): RateLimits {
  const {
    windowSeconds,
    loginPerIp,
    loginPerAccount,
    loginPerDevice,
    registerPerIp,
    oauthPerIp,
    userCodePerSession,
    userCodePerIp,
    mfaPerAccount,
    clientAuthPerClient,
    clientAuthPerIp,
    emailPerAddress,
    passwordResetPerAddress,
    passwordResetPerIp,
  } = config.rateLimits
  const make = (keyPrefix: string, points: number): Limiter => {
    if (points === 0) return unlimited
    const options = {
      tableName: 'rate_limits',
      tableCreated: true,
      keyPrefix,
      points,
      duration: windowSeconds,
      clearExpiredByTimeout: false,
    }
    // On SQLite the limiter shares Kysely's connection, so it must wait for open transactions.
    return client.dialect === 'sqlite'
      ? limiter(
          new RateLimiterSQLite({
            ...options,
            storeClient: client.sqlite,
            storeType: 'better-sqlite3',
          }),
          client.exclusive,
        )
      : limiter(
          new RateLimiterPostgres({ ...options, storeClient: client.pool, storeType: 'pool' }),
          (fn) => fn(),
        )
  }
  return {
    loginPerIp: make('login_ip', loginPerIp),
    loginPerAccount: make('login_acct', loginPerAccount),
    loginPerDevice: make('login_device', loginPerDevice),
    passwordPerUser: make('password_user', loginPerAccount),
    registerPerIp: make('register_ip', registerPerIp),
    oauthAuthorizePerIp: make('oauth_authorize_ip', oauthPerIp),
    oauthCallbackPerIp: make('oauth_callback_ip', oauthPerIp),
    oauthExchangePerIp: make('oauth_exchange_ip', oauthPerIp),
    deviceAuthorizationPerIp: make('device_authorization_ip', oauthPerIp),
    userCodePerSession: make('user_code_session', userCodePerSession),
    userCodePerIp: make('user_code_ip', userCodePerIp),
    mfaPerUser: make('mfa_user', mfaPerAccount),
    clientAuthPerClient: make('client_auth_client', clientAuthPerClient),
    clientAuthPerIp: make('client_auth_ip', clientAuthPerIp),
    emailPerIp: make('email_ip', registerPerIp),
    emailPerAddress: make('email_address', emailPerAddress),
    passwordResetPerAddress: make('reset_address', passwordResetPerAddress),
    passwordResetPerIp: make('reset_ip', passwordResetPerIp),
    passwordResetTokenPerIp: make('reset_token_ip', passwordResetPerIp),
  }
}

/** Per-account keys are hashed so the counter table holds no email addresses. */
export function accountKey(normalizedEmail: string): string {
  return createHash('sha256').update(normalizedEmail).digest('base64url')
}
