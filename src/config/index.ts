import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import * as v from 'valibot'

/**
 * The one place that reads the environment. Every variable is validated at start-up; a bad value
 * stops the process with a message naming the variable (and never echoing a secret).
 */

const int = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.trim(),
    v.regex(/^\d+$/, `${name} must be a whole number`),
    v.transform(Number),
    v.number(),
    v.minValue(min, `${name} must be at least ${min}`),
    v.maxValue(max, `${name} must be at most ${max}`),
  )

const bool = (name: string, fallback: boolean) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.trim(),
    v.toLowerCase(),
    v.picklist(['true', 'false', '1', '0', 'yes', 'no'], `${name} must be true or false`),
    v.transform((s) => s === 'true' || s === '1' || s === 'yes'),
  )

const httpUrl = (name: string, fallback: string) =>
  v.pipe(
    v.optional(v.string(), fallback),
    v.trim(),
    v.url(`${name} must be an absolute URL`),
    v.check((s) => /^https?:\/\//.test(s), `${name} must be an http(s) URL`),
    v.transform((s) => s.replace(/\/+$/, '')),
  )

const optionalSecret = (name: string, minLength: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.minLength(minLength, `${name} must be at least ${minLength} characters long`),
    ),
  )

const csv = (fallback: string) =>
  v.pipe(
    v.optional(v.string(), fallback),
    v.transform((s) =>
      s
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part.length > 0),
    ),
  )

/**
 * `::ffff:192.0.2.1` is how a dual-stack socket reports an IPv4 client; rules and addresses are
 * compared in their IPv4 form so one entry covers both spellings.
 */
export function normalizeIp(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  return mapped !== null && isIP(mapped[1]!) === 4 ? mapped[1]! : address
}

/** One TRUST_PROXY entry (`192.0.2.1`, `10.0.0.0/8`, `fd00::/8`), normalised; undefined if it is not one. */
function parseProxyEntry(entry: string): string | undefined {
  const [address = '', prefix, ...rest] = entry.split('/')
  if (rest.length > 0) return undefined
  const ip = normalizeIp(address)
  const family = isIP(ip)
  if (family === 0) return undefined
  if (prefix === undefined) return ip
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return undefined
  // A mapped IPv6 prefix (::ffff:10.0.0.0/104) would need re-basing; ask for the IPv4 form instead.
  if (ip !== address) return undefined
  return `${ip}/${Number(prefix)}`
}

/**
 * TRUST_PROXY: the addresses of the reverse proxies in front (README, "HTTP"). `true` used to mean
 * "believe any X-Forwarded-For" and is refused rather than silently given a new meaning.
 */
const trustedProxies = v.pipe(
  v.optional(v.string(), 'false'),
  v.trim(),
  v.check(
    (s) => !['true', '1', 'yes'].includes(s.toLowerCase()),
    'TRUST_PROXY no longer takes true: list the addresses or CIDRs of your reverse proxies (e.g. TRUST_PROXY=10.0.0.0/24)',
  ),
  v.transform((s) =>
    ['false', '0', 'no'].includes(s.toLowerCase())
      ? []
      : s
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part.length > 0),
  ),
  v.check(
    (entries) => entries.every((e) => parseProxyEntry(e) !== undefined),
    'TRUST_PROXY must be false or a comma-separated list of IPv4/IPv6 addresses or CIDRs',
  ),
  v.transform((entries) => entries.map((e) => parseProxyEntry(e)!)),
)

/** Federated-login providers (API.md, "Federated login"); ORCID can only be linked. */
export const OAUTH_PROVIDERS = ['cilogon', 'github', 'google', 'gitlab', 'orcid'] as const
export type OAuthProviderName = (typeof OAUTH_PROVIDERS)[number]

/** The public issuers (OIDC) or base URL (GitHub) used when no override is configured. */
export const DEFAULT_OAUTH_ISSUERS: Record<OAuthProviderName, string> = {
  cilogon: 'https://cilogon.org',
  github: 'https://github.com',
  google: 'https://accounts.google.com',
  gitlab: 'https://gitlab.com',
  orcid: 'https://orcid.org',
}

const oauthUrl = (name: string) =>
  v.optional(v.pipe(v.string(), v.trim(), v.url(`${name} must be an absolute URL`)))

const oauthClientEntries = Object.fromEntries(
  OAUTH_PROVIDERS.flatMap((p) => {
    const P = p.toUpperCase()
    return [
      [`OAUTH_${P}_CLIENT_ID`, v.optional(v.pipe(v.string(), v.trim()))],
      [`OAUTH_${P}_CLIENT_SECRET`, v.optional(v.string())],
      ...(p === 'github' ? [] : [[`OAUTH_${P}_ISSUER`, oauthUrl(`OAUTH_${P}_ISSUER`)]]),
    ]
  }),
) as Record<string, v.OptionalSchema<v.GenericSchema<string, string>, undefined>>

const ADMINISTRATIVE_ROLES = ['admin', 'administrator', 'superuser', 'root', 'staff', 'service']

const EnvSchema = v.object({
  PORT: int('PORT', 8000, 0, 65535),
  HOST: v.optional(v.pipe(v.string(), v.trim(), v.nonEmpty('HOST must not be empty')), '0.0.0.0'),
  DATABASE_URL: v.pipe(
    v.optional(v.string(), 'sqlite:./data/tessera.db'),
    v.trim(),
    v.check(
      (s) => /^sqlite:.+/.test(s) || /^postgres(ql)?:\/\/.+/.test(s),
      'DATABASE_URL must be sqlite:<path> or postgres://...',
    ),
  ),
  DATABASE_POOL_SIZE: int('DATABASE_POOL_SIZE', 10, 1, 1000),
  DATABASE_CONNECT_TIMEOUT: int('DATABASE_CONNECT_TIMEOUT', 5, 1, 60),
  TESSERA_ISSUER: httpUrl('TESSERA_ISSUER', 'http://localhost:8000'),
  TESSERA_AUDIENCE: v.optional(
    v.pipe(v.string(), v.trim(), v.nonEmpty('TESSERA_AUDIENCE must not be empty')),
    'tessera',
  ),
  ACCESS_TOKEN_TTL: int('ACCESS_TOKEN_TTL', 900, 30, 86_400),
  REFRESH_TOKEN_TTL: int('REFRESH_TOKEN_TTL', 2_592_000, 60, 31_536_000),
  SESSION_ABSOLUTE_TTL: int('SESSION_ABSOLUTE_TTL', 7_776_000, 60, 315_360_000),
  REFRESH_REUSE_INTERVAL: int('REFRESH_REUSE_INTERVAL', 0, 0, 300),
  KEYS_MAX_AGE: int('KEYS_MAX_AGE', 300, 0, 86_400),
  REAUTH_MAX_AGE: int('REAUTH_MAX_AGE', 300, 10, 86_400),
  SERVICE_SECRET: optionalSecret('SERVICE_SECRET', 16),
  KEY_ENCRYPTION_KEY: optionalSecret('KEY_ENCRYPTION_KEY', 32),
  KEY_ENCRYPTION_KEY_FILE: v.optional(
    v.pipe(v.string(), v.trim(), v.nonEmpty('KEY_ENCRYPTION_KEY_FILE must not be empty')),
  ),
  METRICS_TOKEN: optionalSecret('METRICS_TOKEN', 16),
  ARGON2_MEMORY_KIB: int('ARGON2_MEMORY_KIB', 19_456, 7_168, 4_194_304),
  ARGON2_TIME_COST: int('ARGON2_TIME_COST', 2, 1, 100),
  ARGON2_PARALLELISM: int('ARGON2_PARALLELISM', 1, 1, 16),
  ARGON2_MAX_CONCURRENCY: int('ARGON2_MAX_CONCURRENCY', availableParallelism(), 1, 256),
  ARGON2_MAX_QUEUE: int('ARGON2_MAX_QUEUE', 64, 0, 100_000),
  PASSWORD_MIN_LENGTH: int('PASSWORD_MIN_LENGTH', 8, 8, 64),
  SELF_ASSIGNABLE_ROLES: v.pipe(
    csv('researcher'),
    v.check(
      (roles) => roles.every((r) => !ADMINISTRATIVE_ROLES.includes(r.toLowerCase())),
      `SELF_ASSIGNABLE_ROLES must not contain an administrative role (${ADMINISTRATIVE_ROLES.join(', ')})`,
    ),
    v.check(
      (roles) => roles.every((r) => /^[a-z][a-z0-9_-]{0,63}$/.test(r)),
      'SELF_ASSIGNABLE_ROLES must be lower-case names (a-z, 0-9, _ and -)',
    ),
  ),
  RATE_LIMIT_WINDOW: int('RATE_LIMIT_WINDOW', 900, 1, 86_400),
  RATE_LIMIT_LOGIN_PER_IP: int('RATE_LIMIT_LOGIN_PER_IP', 100, 0),
  RATE_LIMIT_LOGIN_PER_ACCOUNT: int('RATE_LIMIT_LOGIN_PER_ACCOUNT', 10, 0),
  RATE_LIMIT_LOGIN_PER_DEVICE: int('RATE_LIMIT_LOGIN_PER_DEVICE', 10, 0),
  RATE_LIMIT_REGISTER_PER_IP: int('RATE_LIMIT_REGISTER_PER_IP', 20, 0),
  RATE_LIMIT_OAUTH_PER_IP: int('RATE_LIMIT_OAUTH_PER_IP', 60, 0),
  RATE_LIMIT_REFRESH_PER_SESSION: int('RATE_LIMIT_REFRESH_PER_SESSION', 60, 0),
  TRUST_PROXY: trustedProxies,
  OAUTH_REDIRECT_URIS: v.pipe(
    csv(''),
    v.check(
      (uris) => uris.every((u) => URL.canParse(u) && /^[a-z][a-z0-9+.-]*:/i.test(u)),
      'OAUTH_REDIRECT_URIS must be a comma-separated list of absolute URIs',
    ),
  ),
  OAUTH_ALLOW_INSECURE_ISSUERS: bool('OAUTH_ALLOW_INSECURE_ISSUERS', false),
  OAUTH_CLIENT_PKCE: v.optional(
    v.picklist(['required', 'optional'], 'OAUTH_CLIENT_PKCE must be required or optional'),
    'required',
  ),
  OAUTH_GITHUB_BASE_URL: oauthUrl('OAUTH_GITHUB_BASE_URL'),
  OAUTH_GITHUB_API_URL: oauthUrl('OAUTH_GITHUB_API_URL'),
  ...oauthClientEntries,
  LOG_LEVEL: v.optional(
    v.picklist(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent',
    ),
    'info',
  ),
})

/** The cross-variable rules, as partial checks: they run even when other variables are bad. */
const CheckedEnvSchema = v.pipe(
  EnvSchema,
  v.forward(
    v.partialCheck(
      [['KEY_ENCRYPTION_KEY'], ['KEY_ENCRYPTION_KEY_FILE']],
      (e) => e.KEY_ENCRYPTION_KEY === undefined || e.KEY_ENCRYPTION_KEY_FILE === undefined,
      'KEY_ENCRYPTION_KEY_FILE and KEY_ENCRYPTION_KEY must not both be set',
    ),
    ['KEY_ENCRYPTION_KEY_FILE'],
  ),
  v.forward(
    v.partialCheck(
      [['REFRESH_TOKEN_TTL'], ['SESSION_ABSOLUTE_TTL']],
      (e) => e.SESSION_ABSOLUTE_TTL >= e.REFRESH_TOKEN_TTL,
      'SESSION_ABSOLUTE_TTL must be at least REFRESH_TOKEN_TTL',
    ),
    ['SESSION_ABSOLUTE_TTL'],
  ),
)

export type Env = Record<string, string | undefined>

export interface OAuthClientConfig {
  clientId: string
  clientSecret: string
  /** OIDC issuer (exactly as configured), or for GitHub the web base URL without a trailing slash. */
  issuer: string
  /** GitHub only: the REST API base URL. */
  apiUrl?: string
}

export interface OAuthConfig {
  /** Exact allow-list of client redirect URIs (no prefix or pattern matching). */
  redirectUris: string[]
  allowInsecureIssuers: boolean
  /**
   * `required`: a login flow must bring the client's PKCE `code_challenge`; `optional`: clients
   * that cannot may leave it out and must check the passed-through `state` (README).
   */
  clientPkce: 'required' | 'optional'
  /** Enabled providers only: both client id and secret configured. */
  providers: Partial<Record<OAuthProviderName, OAuthClientConfig>>
}

export interface Config {
  port: number
  host: string
  databaseUrl: string
  databasePoolSize: number
  /** Seconds a request waits for a PostgreSQL connection before it answers 503. */
  databaseConnectTimeout: number
  issuer: string
  audience: string
  accessTokenTtl: number
  refreshTokenTtl: number
  sessionAbsoluteTtl: number
  refreshReuseInterval: number
  keysMaxAge: number
  /** Seconds: how recent the session's authentication must be to link, unlink (README). */
  reauthMaxAge: number
  serviceSecret: string | undefined
  /**
   * Encrypts signing keys at rest. When neither it nor `keyEncryptionKeyFile` is set, SQLite
   * generates one into a file beside the database and PostgreSQL refuses to start (README, "Keys").
   */
  keyEncryptionKey: string | undefined
  /** A file holding the key-encryption key (KEY_ENCRYPTION_KEY_FILE). */
  keyEncryptionKeyFile: string | undefined
  /** When set, `GET /metrics` requires `Authorization: Bearer <token>`; unset, it is open. */
  metricsToken: string | undefined
  argon2: { memoryKiB: number; timeCost: number; parallelism: number }
  argon2MaxConcurrency: number
  argon2MaxQueue: number
  passwordMinLength: number
  selfAssignableRoles: string[]
  rateLimits: {
    windowSeconds: number
    loginPerIp: number
    /** Failed logins per account and window from clients without a device cookie for it. */
    loginPerAccount: number
    /** Failed logins per device cookie and window (README, "Passwords and login"). */
    loginPerDevice: number
    registerPerIp: number
    /** Requests per address and window to each of federated authorize, callback and exchange. */
    oauthPerIp: number
    /** Refreshes per session and window (0 = off); counted on the session row (README, "Tokens"). */
    refreshPerSession: number
  }
  /**
   * Addresses and CIDRs (normalised: IPv4 rather than IPv4-mapped IPv6) of the reverse proxies
   * whose X-Forwarded-For is believed; empty: nobody's.
   */
  trustProxy: string[]
  oauth: OAuthConfig
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

/** Reads and validates the environment. Throws `ConfigError` listing every bad variable. */
export function loadConfig(env: Env = process.env): Config {
  // Empty strings mean "unset", as in most shells' `VAR= command`.
  const present = Object.fromEntries(
    Object.keys(EnvSchema.entries)
      .filter((name) => env[name] !== undefined && env[name] !== '')
      .map((name) => [name, env[name]]),
  )
  const result = v.safeParse(CheckedEnvSchema, present)
  if (!result.success) {
    throw new ConfigError(
      result.issues.map((issue) => {
        const name = v.getDotPath(issue) ?? 'environment'
        return issue.message.startsWith(name) ? issue.message : `${name}: ${issue.message}`
      }),
    )
  }
  const e = result.output
  const oauth = readOAuthConfig(e as unknown as Record<string, unknown>)
  if (oauth.problems.length > 0) throw new ConfigError(oauth.problems)
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databaseConnectTimeout: e.DATABASE_CONNECT_TIMEOUT,
    issuer: e.TESSERA_ISSUER,
    audience: e.TESSERA_AUDIENCE,
    accessTokenTtl: e.ACCESS_TOKEN_TTL,
    refreshTokenTtl: e.REFRESH_TOKEN_TTL,
    sessionAbsoluteTtl: e.SESSION_ABSOLUTE_TTL,
    refreshReuseInterval: e.REFRESH_REUSE_INTERVAL,
    keysMaxAge: e.KEYS_MAX_AGE,
    reauthMaxAge: e.REAUTH_MAX_AGE,
    serviceSecret: e.SERVICE_SECRET,
    keyEncryptionKey: e.KEY_ENCRYPTION_KEY,
    keyEncryptionKeyFile: e.KEY_ENCRYPTION_KEY_FILE,
    metricsToken: e.METRICS_TOKEN,
    argon2: {
      memoryKiB: e.ARGON2_MEMORY_KIB,
      timeCost: e.ARGON2_TIME_COST,
      parallelism: e.ARGON2_PARALLELISM,
    },
    argon2MaxConcurrency: e.ARGON2_MAX_CONCURRENCY,
    argon2MaxQueue: e.ARGON2_MAX_QUEUE,
    passwordMinLength: e.PASSWORD_MIN_LENGTH,
    selfAssignableRoles: e.SELF_ASSIGNABLE_ROLES,
    rateLimits: {
      windowSeconds: e.RATE_LIMIT_WINDOW,
      loginPerIp: e.RATE_LIMIT_LOGIN_PER_IP,
      loginPerAccount: e.RATE_LIMIT_LOGIN_PER_ACCOUNT,
      loginPerDevice: e.RATE_LIMIT_LOGIN_PER_DEVICE,
      registerPerIp: e.RATE_LIMIT_REGISTER_PER_IP,
      oauthPerIp: e.RATE_LIMIT_OAUTH_PER_IP,
      refreshPerSession: e.RATE_LIMIT_REFRESH_PER_SESSION,
    },
    trustProxy: e.TRUST_PROXY,
    oauth: oauth.config,
    logLevel: e.LOG_LEVEL,
  }
}

/**
 * A provider is enabled when both its client id and secret are set; one without the other is a
 * configuration mistake and stops the process. `http://` provider URLs need
 * OAUTH_ALLOW_INSECURE_ISSUERS (local testing only).
 */
function readOAuthConfig(e: Record<string, unknown>): { config: OAuthConfig; problems: string[] } {
  const problems: string[] = []
  const allowInsecure = e.OAUTH_ALLOW_INSECURE_ISSUERS === true
  const providers: OAuthConfig['providers'] = {}
  const checkUrl = (name: string, url: string) => {
    if (url.startsWith('http://') && !allowInsecure) {
      problems.push(
        `${name} must be an https URL (set OAUTH_ALLOW_INSECURE_ISSUERS=true for local testing)`,
      )
    } else if (!/^https?:\/\//.test(url)) {
      problems.push(`${name} must be an http(s) URL`)
    }
  }
  for (const p of OAUTH_PROVIDERS) {
    const P = p.toUpperCase()
    const clientId = e[`OAUTH_${P}_CLIENT_ID`] as string | undefined
    const clientSecret = e[`OAUTH_${P}_CLIENT_SECRET`] as string | undefined
    if (clientId === undefined && clientSecret === undefined) continue
    if (clientId === undefined || clientSecret === undefined) {
      problems.push(`OAUTH_${P}_CLIENT_ID and OAUTH_${P}_CLIENT_SECRET must be set together`)
      continue
    }
    const issuerVar = p === 'github' ? 'OAUTH_GITHUB_BASE_URL' : `OAUTH_${P}_ISSUER`
    // An OIDC issuer is compared exactly with the discovery document's `issuer`: keep it as given.
    const configured = (e[issuerVar] as string | undefined) ?? DEFAULT_OAUTH_ISSUERS[p]
    const issuer = p === 'github' ? configured.replace(/\/+$/, '') : configured
    checkUrl(issuerVar, issuer)
    const client: OAuthClientConfig = { clientId, clientSecret, issuer }
    if (p === 'github') {
      client.apiUrl = (
        (e.OAUTH_GITHUB_API_URL as string | undefined) ?? 'https://api.github.com'
      ).replace(/\/+$/, '')
      checkUrl('OAUTH_GITHUB_API_URL', client.apiUrl)
    }
    providers[p] = client
  }
  return {
    config: {
      redirectUris: e.OAUTH_REDIRECT_URIS as string[],
      allowInsecureIssuers: allowInsecure,
      clientPkce: e.OAUTH_CLIENT_PKCE as OAuthConfig['clientPkce'],
      providers,
    },
    problems,
  }
}
