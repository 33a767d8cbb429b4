import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import addressparser from 'nodemailer/lib/addressparser'
import * as v from 'valibot'
import { OAUTH_PROVIDERS, type OAuthProviderName, PROVIDERS } from '../federation/provider-table.js'
import { parseSmtpUrl } from '../mail/smtp-url.js'
import { hasControlCharacters } from '../text.js'

/**
 * The one place that reads the environment. Every variable is validated at start-up; a bad value
 * stops the process with a message naming the variable (and never echoing a secret). One schema
 * declares each variable's rule and where it lands in `Config`; its output type is `Config`.
 */

const int = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.trim(),
    v.regex(/^\d+$/, 'must be a whole number'),
    v.transform(Number),
    v.number(),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  )

/** A whole number that has no fixed default (the default follows from other variables). */
const optionalInt = (min: number, max: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^\d+$/, 'must be a whole number'),
      v.transform(Number),
      v.number(),
      v.minValue(min, `must be at least ${min}`),
      v.maxValue(max, `must be at most ${max}`),
    ),
  )

/**
 * `tessera/verify`'s default refetch cooldown (src/verify/key-set.ts) plus a margin: with
 * KEYS_MAX_AGE, how long after `tessera keys rotate` a verifier that fetched the keys just before
 * can have seen the next key (README, "Keys").
 */
export const VERIFIER_COOLDOWN_SECONDS = 30
const ROTATION_MARGIN_SECONDS = 30

const bool = (fallback: boolean) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.trim(),
    v.toLowerCase(),
    v.picklist(['true', 'false', '1', '0', 'yes', 'no'], 'must be true or false'),
    v.transform((s) => s === 'true' || s === '1' || s === 'yes'),
  )

/** An http(s) URL without a trailing slash; no fixed default (it follows other variables). */
const httpUrl = v.optional(
  v.pipe(
    v.string(),
    v.trim(),
    v.url('must be an absolute URL'),
    v.check((s) => /^https?:\/\//.test(s), 'must be an http(s) URL'),
    v.transform((s) => s.replace(/\/+$/, '')),
  ),
)

/** The message names the length only: a rejected secret is never echoed. */
const optionalSecret = (minLength: number) =>
  v.optional(
    v.pipe(v.string(), v.minLength(minLength, `must be at least ${minLength} characters long`)),
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
 * One CORS_ORIGINS entry, or why it is not one. Browsers send `Origin` as the URL's origin
 * serialised (lower-case scheme and host, no default port, no path), so an entry in any other
 * spelling could never match: it is refused with the spelling that would.
 */
function corsOriginProblem(entry: string): string | undefined {
  if (entry.includes('*')) return `"${entry}": wildcards are not allowed, list each origin`
  if (!URL.canParse(entry)) return `"${entry}" is not an origin (scheme://host[:port])`
  const url = new URL(entry)
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `"${entry}" must be an http or https origin`
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '')
    return `"${entry}" must be an origin only (scheme://host[:port])`
  if (entry !== url.origin) {
    const spelling = '(no path or trailing slash, no default port)'
    return `"${entry}" must be written as ${url.origin} ${spelling}`
  }
  return undefined
}

/**
 * CORS_ORIGINS: the exact origins of browser front-ends (README, "Browser front-ends on another
 * origin").
 */
const corsOrigins = v.pipe(
  csv(''),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return
    for (const entry of dataset.value) {
      const problem = corsOriginProblem(entry)
      if (problem !== undefined) addIssue({ message: `CORS_ORIGINS entry ${problem}` })
    }
  }),
)

/**
 * `::ffff:192.0.2.1` is how a dual-stack socket reports an IPv4 client; rules and addresses are
 * compared in their IPv4 form so one entry covers both spellings.
 */
export function normalizeIp(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  return mapped !== null && isIP(mapped[1]!) === 4 ? mapped[1]! : address
}

/**
 * One TRUST_PROXY entry (`192.0.2.1`, `10.0.0.0/8`, `fd00::/8`), normalised; undefined if it is
 * not one.
 */
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
    'TRUST_PROXY no longer takes true: list the addresses or CIDRs of your reverse proxies ' +
      '(e.g. TRUST_PROXY=10.0.0.0/24)',
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
    'must be false or a comma-separated list of IPv4/IPv6 addresses or CIDRs',
  ),
  v.transform((entries) => entries.map((e) => parseProxyEntry(e)!)),
)

export { OAUTH_PROVIDERS, type OAuthProviderName }

/** SMTP_URL (README, "Mail"); a bad one's message never repeats it (it may hold a password). */
const smtpUrl = v.optional(
  v.pipe(
    v.string(),
    v.trim(),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const settings = parseSmtpUrl(dataset.value)
      if (typeof settings === 'string') {
        addIssue({ message: settings })
        return NEVER
      }
      return settings
    }),
  ),
)

/** MAIL_FROM: one address, with or without a display name (`Tessera <no-reply@example.org>`). */
const mailFrom = v.optional(
  v.pipe(
    v.string(),
    v.trim(),
    v.maxLength(320, 'must be at most 320 characters'),
    v.check((s) => !hasControlCharacters(s), 'must not contain control characters'),
    v.check((s) => {
      const parsed = addressparser(s, { flatten: true })
      return parsed.length === 1 && /^[^@\s]+@[^@\s]+$/.test(parsed[0]!.address)
    }, 'must be one email address, optionally with a name: Name <address@example.org>'),
  ),
)

/**
 * Every name a provider's variable can have. A superset: the spellings a provider does not use
 * (an OIDC provider's BASE_URL) have no schema entry and read as unset.
 */
type ProviderVariable =
  `OAUTH_${Uppercase<OAuthProviderName>}_${'CLIENT_ID' | 'CLIENT_SECRET' | ProviderUrlVariable}`
type ProviderUrlVariable = 'ISSUER' | 'BASE_URL' | 'API_URL'

/**
 * One provider's variables. OIDC providers take an issuer; a GitHub-protocol provider a web base
 * URL and an API base URL instead (README, "Configuration").
 */
function providerVariables(p: OAuthProviderName): {
  clientId: ProviderVariable
  clientSecret: ProviderVariable
  issuer: ProviderVariable
  apiUrl: ProviderVariable | undefined
} {
  const P = p.toUpperCase() as Uppercase<OAuthProviderName>
  const github = PROVIDERS[p].protocol === 'github-oauth'
  return {
    clientId: `OAUTH_${P}_CLIENT_ID`,
    clientSecret: `OAUTH_${P}_CLIENT_SECRET`,
    issuer: github ? `OAUTH_${P}_BASE_URL` : `OAUTH_${P}_ISSUER`,
    apiUrl: github ? `OAUTH_${P}_API_URL` : undefined,
  }
}

const oauthUrl = v.optional(v.pipe(v.string(), v.trim(), v.url('must be an absolute URL')))

const providerEntries = Object.fromEntries(
  OAUTH_PROVIDERS.flatMap((p) => {
    const names = providerVariables(p)
    return [
      [names.clientId, v.optional(v.pipe(v.string(), v.trim()))],
      [names.clientSecret, v.optional(v.string())],
      [names.issuer, oauthUrl],
      ...(names.apiUrl === undefined ? [] : [[names.apiUrl, oauthUrl]]),
    ]
  }),
  // Object.fromEntries cannot type computed keys; the names are those of providerVariables.
) as Record<ProviderVariable, v.GenericSchema<string | undefined, string | undefined>>

/** An audience or scope name: what appears in `aud` and `scope`, and is asked for as `resource`. */
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/

const ADMINISTRATIVE_ROLES = ['admin', 'administrator', 'superuser', 'root', 'staff', 'service']

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/**
 * Every variable and its rule. A message that does not start with the variable's name gets it in
 * front (`PORT` + ` must be a whole number`).
 */
const Variables = v.object({
  PORT: int(8000, 0, 65535),
  HOST: v.optional(v.pipe(v.string(), v.trim(), v.nonEmpty('must not be empty')), '0.0.0.0'),
  DATABASE_URL: v.pipe(
    v.optional(v.string(), 'sqlite:./data/tessera.db'),
    v.trim(),
    v.check(
      (s) => /^sqlite:.+/.test(s) || /^postgres(ql)?:\/\/.+/.test(s),
      'must be sqlite:<path> or postgres://...',
    ),
  ),
  DATABASE_POOL_SIZE: int(10, 1, 1000),
  DATABASE_CONNECT_TIMEOUT: int(5, 1, 60),
  // Unset: http://localhost:$PORT (defaultIssuer), so tokens name the port served on.
  TESSERA_ISSUER: httpUrl,
  TESSERA_AUDIENCE: v.optional(
    v.pipe(v.string(), v.trim(), v.nonEmpty('must not be empty')),
    'tessera',
  ),
  ACCESS_TOKEN_TTL: int(900, 30, 86_400),
  // README, "Scripts, pipelines and services": audiences, scopes, personal and job tokens.
  AUDIENCES: v.pipe(
    csv(''),
    v.check(
      (names) => names.every((n) => TOKEN_NAME.test(n)),
      'must be a comma-separated list of names (A-Z a-z 0-9 . _ : / -, at most 200 each)',
    ),
  ),
  SCOPES: v.pipe(
    v.optional(v.string(), 'read write'),
    v.transform((s) => s.split(/[\s,]+/).filter((part) => part.length > 0)),
    v.check(
      (names) => names.length > 0 && names.every((n) => /^[a-z][a-z0-9_:.-]{0,63}$/.test(n)),
      'must be a list of lower-case scope names (a-z, 0-9, _ : . -)',
    ),
  ),
  PAT_MAX_LIFETIME: int(31_536_000, 60, 5 * 31_536_000),
  JOB_TOKEN_MAX_TTL: int(86_400, 0, 86_400),
  REFRESH_TOKEN_TTL: int(2_592_000, 60, 31_536_000),
  SESSION_ABSOLUTE_TTL: int(7_776_000, 60, 315_360_000),
  // GoTrue's REFRESH_TOKEN_REUSE_INTERVAL default (README, "Tokens": why 10 s).
  REFRESH_REUSE_INTERVAL: int(10, 0, 300),
  // docs/performance.md, "Refresh on SQLite: the writer thread".
  SQLITE_REFRESH_THREAD_FROM: int(200, 0, 1_000_000),
  KEYS_MAX_AGE: int(300, 0, 86_400),
  KEY_ROTATION_DELAY: optionalInt(0, 604_800),
  REAUTH_MAX_AGE: int(300, 10, 86_400),
  BROWSER_SESSION_TTL: int(36_000, 60, 2_592_000),
  BROWSER_SESSION_IDLE_TTL: int(1_800, 60, 2_592_000),
  SERVICE_SECRET: optionalSecret(16),
  KEY_ENCRYPTION_KEY: optionalSecret(32),
  KEY_ENCRYPTION_KEY_FILE: v.optional(
    v.pipe(v.string(), v.trim(), v.nonEmpty('must not be empty')),
  ),
  METRICS_TOKEN: optionalSecret(16),
  ARGON2_MEMORY_KIB: int(19_456, 7_168, 4_194_304),
  ARGON2_TIME_COST: int(2, 1, 100),
  ARGON2_PARALLELISM: int(1, 1, 16),
  ARGON2_MAX_CONCURRENCY: int(availableParallelism(), 1, 256),
  ARGON2_MAX_QUEUE: int(64, 0, 100_000),
  PASSWORD_MIN_LENGTH: int(8, 8, 64),
  REQUIRE_VERIFIED_EMAIL: bool(false),
  SELF_ASSIGNABLE_ROLES: v.pipe(
    csv('researcher'),
    v.check(
      (roles) => roles.every((r) => !ADMINISTRATIVE_ROLES.includes(r.toLowerCase())),
      `must not contain an administrative role (${ADMINISTRATIVE_ROLES.join(', ')})`,
    ),
    v.check(
      (roles) => roles.every((r) => /^[a-z][a-z0-9_-]{0,63}$/.test(r)),
      'must be lower-case names (a-z, 0-9, _ and -)',
    ),
  ),
  RATE_LIMIT_WINDOW: int(900, 1, 86_400),
  RATE_LIMIT_LOGIN_PER_IP: int(100, 0),
  RATE_LIMIT_LOGIN_PER_ACCOUNT: int(10, 0),
  RATE_LIMIT_LOGIN_PER_DEVICE: int(10, 0),
  RATE_LIMIT_REGISTER_PER_IP: int(20, 0),
  RATE_LIMIT_OAUTH_PER_IP: int(60, 0),
  RATE_LIMIT_REFRESH_PER_SESSION: int(60, 0),
  RATE_LIMIT_USER_CODE_PER_SESSION: int(10, 0),
  RATE_LIMIT_USER_CODE_PER_IP: int(30, 0),
  RATE_LIMIT_MFA_PER_ACCOUNT: int(10, 0),
  MFA_REQUIRED_FOR: v.pipe(
    v.optional(v.string(), 'superuser'),
    v.trim(),
    v.toLowerCase(),
    v.picklist(['superuser', 'everyone', 'none'], 'must be superuser, everyone or none'),
  ),
  MFA_TRUST_PROVIDER_AMR: v.pipe(
    csv(''),
    v.transform((names) => names.map((name) => name.toLowerCase())),
    v.check(
      (names) => names.every((name) => (OAUTH_PROVIDERS as readonly string[]).includes(name)),
      `must be a comma-separated list of providers (${OAUTH_PROVIDERS.join(', ')})`,
    ),
  ),
  RATE_LIMIT_CLIENT_AUTH_PER_CLIENT: int(20, 0),
  RATE_LIMIT_CLIENT_AUTH_PER_IP: int(100, 0),
  RATE_LIMIT_EMAIL_PER_ADDRESS: int(5, 0),
  RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS: int(3, 0),
  RATE_LIMIT_PASSWORD_RESET_PER_IP: int(20, 0),
  TRUST_PROXY: trustedProxies,
  REVOCATION_NOTIFY: bool(true),
  REVOCATION_POLL_MS: int(250, 50, 60_000),
  REVOCATION_STREAM_MAX_CLIENTS: int(500, 0, 100_000),
  OAUTH_REDIRECT_URIS: v.pipe(
    csv(''),
    v.check(
      (uris) => uris.every((u) => URL.canParse(u) && /^[a-z][a-z0-9+.-]*:/i.test(u)),
      'must be a comma-separated list of absolute URIs',
    ),
  ),
  OAUTH_DEVICE_CLIENTS: v.pipe(
    csv(''),
    v.check(
      (ids) => ids.every((id) => /^[A-Za-z0-9._-]{1,64}$/.test(id)),
      'must be a comma-separated list of client ids (1 to 64 of A-Z a-z 0-9 . _ -)',
    ),
  ),
  CORS_ORIGINS: corsOrigins,
  OAUTH_ALLOW_INSECURE_ISSUERS: bool(false),
  OAUTH_CLIENT_PKCE: v.optional(
    v.picklist(['required', 'optional'], 'must be required or optional'),
    'required',
  ),
  ...providerEntries,
  SMTP_URL: smtpUrl,
  MAIL_FROM: mailFrom,
  MAIL_OUTBOX_DIR: v.optional(v.pipe(v.string(), v.trim(), v.nonEmpty('must not be empty'))),
  PLATFORM_NAME: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.nonEmpty('must not be empty'),
      v.maxLength(64, 'must be at most 64 characters'),
      v.check((s) => !hasControlCharacters(s) && !/[<>"]/.test(s), 'must be plain text'),
    ),
    'Tessera',
  ),
  // README, "Storage and retention": how often a server prunes, and how long audit events stay.
  PRUNE_INTERVAL: int(3600, 0, 604_800),
  AUDIT_RETENTION_DAYS: int(365, 1, 36_500),
  // README, "Passkeys": unset, the relying-party id is TESSERA_ISSUER's host name.
  WEBAUTHN_RP_ID: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.toLowerCase(),
      v.regex(/^[a-z0-9.-]{1,253}$/, 'must be a host name'),
    ),
  ),
  LOG_LEVEL: v.optional(v.picklist(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(', ')}`), 'info'),
})

type Values = v.InferOutput<typeof Variables>

/**
 * TESSERA_ISSUER when unset: this host on the configured port, so a verifier pointed at the port
 * the server answers on accepts its tokens (README, "Configuration"). PORT=0 (any free port) is
 * not known until the server listens; the issuer stays the documented http://localhost:8000 and a
 * deployment on an ephemeral port sets TESSERA_ISSUER.
 */
export function defaultIssuer(port: number): string {
  return `http://localhost:${port === 0 ? 8000 : port}`
}

function issuerHost(e: Pick<Values, 'TESSERA_ISSUER' | 'PORT'>): string {
  return new URL(e.TESSERA_ISSUER ?? defaultIssuer(e.PORT)).hostname
}

/**
 * The warning `serve` logs for an issuer that is plain http on a host other than this machine:
 * tokens, cookies and passwords would cross the network in clear (README, "Configuration").
 * Undefined for https and for loopback hosts.
 */
export function insecureIssuerWarning(issuer: string): string | undefined {
  const url = new URL(issuer)
  if (url.protocol !== 'http:') return undefined
  if (['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)) return undefined
  return (
    `TESSERA_ISSUER ${url.origin} is plain http on a host other than localhost: ` +
    'serve it behind https (and set TESSERA_ISSUER to the https URL)'
  )
}

export interface OAuthClientConfig {
  clientId: string
  clientSecret: string
  /** OIDC issuer (exactly as configured), or for GitHub the web base URL, no trailing slash. */
  issuer: string
  /** GitHub only: the REST API base URL. */
  apiUrl?: string
}

/**
 * A provider is enabled when both its client id and secret are set; one without the other is a
 * configuration mistake and stops the process. `http://` provider URLs need
 * OAUTH_ALLOW_INSECURE_ISSUERS (local testing only). Undefined: the provider is not configured.
 */
function readProvider(
  e: Partial<Values>,
  p: OAuthProviderName,
  allowInsecure: boolean,
): { client?: OAuthClientConfig; problems: string[] } | undefined {
  const names = providerVariables(p)
  const traits = PROVIDERS[p]
  const clientId = e[names.clientId]
  const clientSecret = e[names.clientSecret]
  if (clientId === undefined && clientSecret === undefined) return undefined
  if (clientId === undefined || clientSecret === undefined) {
    return { problems: [`${names.clientId} and ${names.clientSecret} must be set together`] }
  }
  const problems: string[] = []
  const checkUrl = (name: string, url: string) => {
    if (url.startsWith('http://') && !allowInsecure) {
      problems.push(
        `${name} must be an https URL (set OAUTH_ALLOW_INSECURE_ISSUERS=true for local testing)`,
      )
    } else if (!/^https?:\/\//.test(url)) {
      problems.push(`${name} must be an http(s) URL`)
    }
  }
  // An OIDC issuer is compared exactly with the discovery document's `issuer`: keep it as given.
  const configured = e[names.issuer] ?? traits.defaultIssuer
  const issuer = traits.protocol === 'github-oauth' ? configured.replace(/\/+$/, '') : configured
  checkUrl(names.issuer, issuer)
  const client: OAuthClientConfig = { clientId, clientSecret, issuer }
  if (traits.protocol === 'github-oauth' && names.apiUrl !== undefined) {
    client.apiUrl = (e[names.apiUrl] ?? traits.defaultApiUrl).replace(/\/+$/, '')
    checkUrl(names.apiUrl, client.apiUrl)
  }
  return { client, problems }
}

/** Enabled providers only: both client id and secret configured. */
function enabledProviders(e: Values): Partial<Record<OAuthProviderName, OAuthClientConfig>> {
  const providers: Partial<Record<OAuthProviderName, OAuthClientConfig>> = {}
  for (const p of OAUTH_PROVIDERS) {
    const client = readProvider(e, p, e.OAUTH_ALLOW_INSECURE_ISSUERS)?.client
    if (client !== undefined) providers[p] = client
  }
  return providers
}

/** Whether `rpId` is the issuer's host name or a parent domain of it (not a bare TLD). */
function rpIdFits(rpId: string, issuer: string): boolean {
  const host = new URL(issuer).hostname
  if (rpId === host) return true
  return (rpId.includes('.') || rpId === 'localhost') && host.endsWith(`.${rpId}`)
}

/**
 * The environment's schema, whose output is the `Config`. The cross-variable rules run even when
 * other variables are bad, so that every problem is reported at once.
 */
const ConfigSchema = v.pipe(
  Variables,
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
  v.forward(
    v.partialCheck(
      [['REFRESH_REUSE_INTERVAL'], ['ACCESS_TOKEN_TTL']],
      // A replay inside the interval answers the first answer again, access token included
      // (docs/refresh.md): it must still be valid when it arrives.
      (e) => e.REFRESH_REUSE_INTERVAL < e.ACCESS_TOKEN_TTL,
      'REFRESH_REUSE_INTERVAL must be shorter than ACCESS_TOKEN_TTL',
    ),
    ['REFRESH_REUSE_INTERVAL'],
  ),
  v.forward(
    v.partialCheck(
      [['BROWSER_SESSION_TTL'], ['BROWSER_SESSION_IDLE_TTL']],
      (e) => e.BROWSER_SESSION_IDLE_TTL <= e.BROWSER_SESSION_TTL,
      'BROWSER_SESSION_IDLE_TTL must be at most BROWSER_SESSION_TTL',
    ),
    ['BROWSER_SESSION_IDLE_TTL'],
  ),
  v.forward(
    v.partialCheck(
      [['WEBAUTHN_RP_ID'], ['TESSERA_ISSUER'], ['PORT']],
      // WebAuthn's rule (§5.1.3 of the Level 3 spec): an RP ID is the origin's host or a
      // registrable suffix of it; browsers refuse any other, so a typo would fail every passkey.
      (e) =>
        e.WEBAUTHN_RP_ID === undefined ||
        rpIdFits(e.WEBAUTHN_RP_ID, e.TESSERA_ISSUER ?? defaultIssuer(e.PORT)),
      "WEBAUTHN_RP_ID must be TESSERA_ISSUER's host name or a parent domain of it",
    ),
    ['WEBAUTHN_RP_ID'],
  ),
  v.rawCheck(({ dataset, addIssue }) => {
    // Like a partial check, per provider: a provider is checked when its own variables (and
    // OAUTH_ALLOW_INSECURE_ISSUERS) passed their rules; the values of those that passed are
    // their outputs even when the dataset as a whole is not typed.
    const failed = new Set<unknown>(dataset.issues?.flatMap((issue) => issue.path?.[0]?.key ?? []))
    if (failed.has('OAUTH_ALLOW_INSECURE_ISSUERS')) return
    const e = dataset.value as Partial<Values>
    for (const p of OAUTH_PROVIDERS) {
      if (Object.values(providerVariables(p)).some((name) => failed.has(name))) continue
      const read = readProvider(e, p, e.OAUTH_ALLOW_INSECURE_ISSUERS === true)
      for (const message of read?.problems ?? []) addIssue({ message })
    }
  }),
  v.transform((e) => ({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    /** Seconds a request waits for a PostgreSQL connection before it answers 503. */
    databaseConnectTimeout: e.DATABASE_CONNECT_TIMEOUT,
    issuer: e.TESSERA_ISSUER ?? defaultIssuer(e.PORT),
    audience: e.TESSERA_AUDIENCE,
    /**
     * Every audience a token may be minted for: TESSERA_AUDIENCE (Tessera's own, the default)
     * first, then AUDIENCES (README, "Scripts, pipelines and services").
     */
    audiences: [...new Set([e.TESSERA_AUDIENCE, ...e.AUDIENCES])],
    /** The scopes there are; an ordinary login gets all of them. */
    scopes: [...new Set(e.SCOPES)],
    /** Seconds: the longest `expires_in` of a personal access token. */
    patMaxLifetime: e.PAT_MAX_LIFETIME,
    /** Seconds: the longest lifetime of a job token (0: no job tokens). */
    jobTokenMaxTtl: e.JOB_TOKEN_MAX_TTL,
    accessTokenTtl: e.ACCESS_TOKEN_TTL,
    refreshTokenTtl: e.REFRESH_TOKEN_TTL,
    sessionAbsoluteTtl: e.SESSION_ABSOLUTE_TTL,
    refreshReuseInterval: e.REFRESH_REUSE_INTERVAL,
    /**
     * Refreshes per second on a SQLite file from which their transactions move to the refresh
     * writer thread (src/sessions/refresh-sqlite.ts); 0: never, all on the main thread.
     */
    sqliteRefreshThreadFrom: e.SQLITE_REFRESH_THREAD_FROM,
    keysMaxAge: e.KEYS_MAX_AGE,
    /**
     * Seconds from `tessera keys rotate` (which publishes the next key) until that key signs:
     * by default KEYS_MAX_AGE + the verifier's refetch cooldown + a margin (README, "Keys").
     */
    keyRotationDelay:
      e.KEY_ROTATION_DELAY ?? e.KEYS_MAX_AGE + VERIFIER_COOLDOWN_SECONDS + ROTATION_MARGIN_SECONDS,
    /** Seconds: how recent the session's authentication must be to link, unlink (README). */
    reauthMaxAge: e.REAUTH_MAX_AGE,
    /** Seconds a page session (`tessera_session` cookie) lives at most from its sign-in. */
    browserSessionTtl: e.BROWSER_SESSION_TTL,
    /** Seconds without a page request after which a page session ends (README, "Pages"). */
    browserSessionIdleTtl: e.BROWSER_SESSION_IDLE_TTL,
    serviceSecret: e.SERVICE_SECRET,
    /**
     * Encrypts signing keys at rest. When neither it nor `keyEncryptionKeyFile` is set, SQLite
     * generates one into a file beside the database and PostgreSQL refuses to start (README,
     * "Keys").
     */
    keyEncryptionKey: e.KEY_ENCRYPTION_KEY,
    /** A file holding the key-encryption key (KEY_ENCRYPTION_KEY_FILE). */
    keyEncryptionKeyFile: e.KEY_ENCRYPTION_KEY_FILE,
    /** When set, `GET /metrics` requires `Authorization: Bearer <token>`; unset, it is open. */
    metricsToken: e.METRICS_TOKEN,
    argon2: {
      memoryKiB: e.ARGON2_MEMORY_KIB,
      timeCost: e.ARGON2_TIME_COST,
      parallelism: e.ARGON2_PARALLELISM,
    },
    argon2MaxConcurrency: e.ARGON2_MAX_CONCURRENCY,
    argon2MaxQueue: e.ARGON2_MAX_QUEUE,
    passwordMinLength: e.PASSWORD_MIN_LENGTH,
    /**
     * Refuse password sign-in to regular and academic accounts whose address is not verified
     * (`email_not_verified`; README, "Email verification and change").
     */
    requireVerifiedEmail: e.REQUIRE_VERIFIED_EMAIL,
    selfAssignableRoles: e.SELF_ASSIGNABLE_ROLES,
    /**
     * Whose superuser powers or whole account need a second factor (README, "Second factors"):
     * `superuser` (default), `everyone`, `none`.
     */
    mfaRequiredFor: e.MFA_REQUIRED_FOR,
    /**
     * Providers whose ID token's MFA assertion (`amr`/`acr`) stands for the account's own second
     * factor (README, "Second factors"); empty (default): none is trusted.
     */
    mfaTrustProviderAmr: e.MFA_TRUST_PROVIDER_AMR as readonly OAuthProviderName[],
    rateLimits: {
      windowSeconds: e.RATE_LIMIT_WINDOW,
      loginPerIp: e.RATE_LIMIT_LOGIN_PER_IP,
      /** Failed logins per account and window from clients without a device cookie for it. */
      loginPerAccount: e.RATE_LIMIT_LOGIN_PER_ACCOUNT,
      /** Failed logins per device cookie and window (README, "Passwords and login"). */
      loginPerDevice: e.RATE_LIMIT_LOGIN_PER_DEVICE,
      registerPerIp: e.RATE_LIMIT_REGISTER_PER_IP,
      /** Requests per address and window to each of federated authorize, callback and exchange. */
      oauthPerIp: e.RATE_LIMIT_OAUTH_PER_IP,
      /**
       * Refreshes per session and window (0 = off); counted on the session row (README,
       * "Tokens").
       */
      refreshPerSession: e.RATE_LIMIT_REFRESH_PER_SESSION,
      /**
       * Wrong user codes per browser session and window, and per address and window, at the
       * device verification page (README, "Device login"); right ones are not counted.
       */
      userCodePerSession: e.RATE_LIMIT_USER_CODE_PER_SESSION,
      userCodePerIp: e.RATE_LIMIT_USER_CODE_PER_IP,
      /**
       * Wrong second-factor codes (TOTP, recovery) per account and window (README, "Second
       * factors"); right ones are not counted, and the window ends, so it is never a lasting
       * lockout.
       */
      mfaPerAccount: e.RATE_LIMIT_MFA_PER_ACCOUNT,
      /**
       * Failed service-client authentications per client id and per address and window (README,
       * "Service clients"); a right secret is never refused by them.
       */
      clientAuthPerClient: e.RATE_LIMIT_CLIENT_AUTH_PER_CLIENT,
      clientAuthPerIp: e.RATE_LIMIT_CLIENT_AUTH_PER_IP,
      /**
       * Verification and email-change mails per recipient address and window; their requests
       * also count per client address on the registration budget (README).
       */
      emailPerAddress: e.RATE_LIMIT_EMAIL_PER_ADDRESS,
      /** Reset mails per address and window; over it, 202 and no mail (README). */
      passwordResetPerAddress: e.RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS,
      /** Reset requests per client address (an IPv6 one by its /64) and window. */
      passwordResetPerIp: e.RATE_LIMIT_PASSWORD_RESET_PER_IP,
    },
    /**
     * Addresses and CIDRs (normalised: IPv4 rather than IPv4-mapped IPv6) of the reverse proxies
     * whose X-Forwarded-For is believed; empty: nobody's.
     */
    trustProxy: e.TRUST_PROXY,
    /**
     * Exact origins (`scheme://host[:port]`) of browser front-ends allowed to call the JSON API
     * cross-origin; empty: none (README, "Browser front-ends on another origin").
     */
    corsOrigins: e.CORS_ORIGINS,
    /** How each process follows the revocation log and serves its stream (docs/revocation.md). */
    revocations: {
      /** PostgreSQL: learn of new entries by LISTEN/NOTIFY (else by polling). */
      notify: e.REVOCATION_NOTIFY,
      /** Milliseconds between reads of the log when nothing notifies (always on SQLite). */
      pollMs: e.REVOCATION_POLL_MS,
      /** Open `GET /v1/revocations/stream` connections allowed per process (0: none). */
      streamMaxClients: e.REVOCATION_STREAM_MAX_CLIENTS,
    },
    oauth: {
      /** Exact allow-list of client redirect URIs (no prefix or pattern matching). */
      redirectUris: e.OAUTH_REDIRECT_URIS,
      allowInsecureIssuers: e.OAUTH_ALLOW_INSECURE_ISSUERS,
      /**
       * `required`: a login flow must bring the client's PKCE `code_challenge`; `optional`:
       * clients that cannot may leave it out and must check the passed-through `state` (README).
       */
      clientPkce: e.OAUTH_CLIENT_PKCE,
      /**
       * Public clients allowed to start a device login besides the built-in `tessera-cli`
       * (src/device/clients.ts).
       */
      deviceClients: e.OAUTH_DEVICE_CLIENTS,
      providers: enabledProviders(e),
    },
    /** Outgoing mail (README, "Mail"). */
    mail: {
      /** Undefined: no SMTP server, mails are written to `outboxDir` (a development default). */
      smtp: e.SMTP_URL,
      from: e.MAIL_FROM ?? `"${e.PLATFORM_NAME}" <no-reply@${issuerHost(e)}>`,
      /** Unset: `outbox/` in the data directory (src/mail/transport.ts). */
      outboxDir: e.MAIL_OUTBOX_DIR,
      platformName: e.PLATFORM_NAME,
    },
    /** Seconds between a server's prune passes (src/retention); 0: only `tessera prune`. */
    pruneInterval: e.PRUNE_INTERVAL,
    /** Days an audit event is kept; older ones are pruned (README, "Audit log"). */
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    /**
     * The WebAuthn relying party (README, "Passkeys"): its id (WEBAUTHN_RP_ID, else the issuer's
     * host name), the one origin ceremonies may come from (the issuer's), and the name
     * authenticators show.
     */
    webauthn: {
      rpId: e.WEBAUTHN_RP_ID ?? issuerHost(e),
      origin: new URL(e.TESSERA_ISSUER ?? defaultIssuer(e.PORT)).origin,
      rpName: e.PLATFORM_NAME,
    },
    logLevel: e.LOG_LEVEL,
  })),
)

export type Config = v.InferOutput<typeof ConfigSchema>
export type OAuthConfig = Config['oauth']

export type Env = Record<string, string | undefined>

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
    Object.keys(Variables.entries)
      .filter((name) => env[name] !== undefined && env[name] !== '')
      .map((name) => [name, env[name]]),
  )
  const result = v.safeParse(ConfigSchema, present)
  if (!result.success) {
    throw new ConfigError(
      result.issues.map((issue) => {
        const name = v.getDotPath(issue)
        return name === null || issue.message.startsWith(name)
          ? issue.message
          : `${name} ${issue.message}`
      }),
    )
  }
  return result.output
}
