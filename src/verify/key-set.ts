/**
 * Key sets for verifiers: the PASERK public keys a resource service accepts, either fetched from
 * Tessera's `GET /v1/keys` and cached, or given by configuration. docs/security.md: keys come only
 * from configuration or the keys endpoint, never from a token, and an unknown `kid` fails closed.
 *
 * The remote defaults are those of jose's remote JWK set (`src/jwks/remote.ts`): 5 s fetch timeout,
 * 30 s cooldown between reloads for an unknown key id, 10 min cache when the response says nothing.
 */
import type { PublicKey } from '../paseto/ed25519.js'
import { importPublicPaserk, publicKeyId } from '../paseto/paserk.js'

/** Where a verifier finds the key named by a token's `kid`. */
export interface KeySet {
  /**
   * The key with this `kid` (a PASERK `k4.pid`), or undefined when the set has none. A remote set
   * may fetch first (see `createRemoteKeySet`) and throws `KeySetUnavailableError` when it has
   * never managed to fetch the keys.
   */
  resolve(kid: string): Promise<PublicKey | undefined>
  /** Fetches the keys now, whatever the cache says; rejects when that fetch fails. */
  reload(): Promise<void>
}

/** A key given by configuration, as `GET /v1/keys` lists it. */
export interface ConfiguredKey {
  kid: string
  paserk: string
}

export interface RemoteKeySetOptions {
  /** Tessera's keys endpoint, e.g. `https://id.example.org/v1/keys`. `http:` or `https:`. */
  url: string | URL
  /** The fetch to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch
  /** Abort a fetch (headers and body) after this many milliseconds. Default 5000. */
  timeoutMs?: number
  /**
   * Least time between two fetches started by `resolve` (for an unknown `kid`, a stale cache, or a
   * retry after a failure), in milliseconds, so a flood of tokens with forged `kid`s costs Tessera
   * at most one request per cooldown. Default 30000.
   */
  cooldownMs?: number
  /** How long a response without `Cache-Control: max-age` stays fresh, in ms. Default 600000. */
  maxAgeMs?: number
  /** The current time in milliseconds. Default `Date.now`. */
  now?: () => number
}

/**
 * `resolve` was called on a remote key set that has never fetched the keys successfully (Tessera
 * unreachable since start-up, or answering something that is not a key set). Not a `TokenError`:
 * nothing is known about the token, so the `auth()` middleware answers 503 `service_unavailable`
 * rather than 401. `cause` is the last fetch's error, for logs.
 */
export class KeySetUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'KeySetUnavailableError'
  }
}

const DEFAULT_TIMEOUT_MS = 5_000
const DEFAULT_COOLDOWN_MS = 30_000
const DEFAULT_MAX_AGE_MS = 600_000
/** Before the first successful fetch every request fails, so retry sooner than the cooldown. */
const RETRY_WITHOUT_KEYS_MS = 1_000
/** Tessera publishes one active key and a few retiring ones: far less than either bound. */
const MAX_RESPONSE_BYTES = 64 * 1024
const MAX_KEYS = 32
/**
 * Every status `GET /v1/keys` publishes: `next` is a key published ahead of its first signature
 * (README, "Keys"), so tokens it signs after the rotation verify without a refetch.
 */
const PUBLISHED_STATUSES: ReadonlySet<unknown> = new Set(['next', 'active', 'retiring'])
const MAX_AGE = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,10})"?\s*(?:,|$)/i
const NO_CACHE = /(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)/i
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} must be a finite, non-negative number of milliseconds`)
  }
  return value
}

/**
 * The key of one entry, checked: a strict `k4.public` PASERK whose PASERK id is the entry's `kid`
 * (so a key list cannot file a key under another key's id). `known` supplies keys imported before,
 * so a refetch does not rebuild a KeyObject for every unchanged key.
 */
function checkedKey(
  kid: unknown,
  paserk: unknown,
  known: ReadonlyMap<string, PublicKey> | undefined,
): { kid: string; key: PublicKey } {
  if (typeof kid !== 'string' || typeof paserk !== 'string') {
    throw new TypeError('"kid" and "paserk" must be strings')
  }
  // publicKeyId decodes the PASERK strictly (prefix, canonical base64url, 32 bytes) first.
  if (publicKeyId(paserk) !== kid) throw new TypeError('"kid" is not the PASERK id of "paserk"')
  return { kid, key: known?.get(kid) ?? importPublicPaserk(paserk) }
}

/**
 * A fixed key set from configuration. Every entry is checked up front (strict `k4.public` PASERK,
 * `kid` equal to its PASERK id); a bad entry throws `TypeError` naming its index, since a
 * configuration mistake should stop start-up rather than reject every token later.
 */
export function createLocalKeySet(keys: ReadonlyArray<ConfiguredKey>): KeySet {
  if (!Array.isArray(keys)) throw new TypeError('keys must be an array of { kid, paserk }')
  const byKid = new Map<string, PublicKey>()
  keys.forEach((entry, index) => {
    try {
      const { kid, key } = checkedKey(entry?.kid, entry?.paserk, byKid)
      byKid.set(kid, key)
    } catch (cause) {
      throw new TypeError(`keys[${index}] is not a valid { kid, paserk } pair`, { cause })
    }
  })
  return {
    resolve: async (kid) => byKid.get(kid),
    reload: async () => {},
  }
}

/**
 * The `Cache-Control` freshness of a response in ms, or undefined when it does not say. A shared
 * cache on the way (a CDN) says with `Age` how long it already kept the response; that part of
 * max-age is spent (RFC 9111 §4.2.3), so a key Tessera published is seen max-age after it was
 * published, not after the cache's copy was made.
 */
function freshnessMs(cacheControl: string | null, age: string | null): number | undefined {
  if (cacheControl === null) return undefined
  const maxAge = MAX_AGE.exec(cacheControl)
  if (maxAge !== null) {
    const spent = age !== null && /^\d{1,10}$/.test(age.trim()) ? Number(age.trim()) : 0
    return Math.max(0, Number(maxAge[1]) - spent) * 1000
  }
  return NO_CACHE.test(cacheControl) ? 0 : undefined
}

/** The body as UTF-8 text, refusing more than `limit` bytes whatever Content-Length claims. */
export async function readBounded(
  res: Response,
  limit: number,
  what = 'key set response',
): Promise<string> {
  const declared = res.headers.get('content-length')
  if (declared !== null && Number(declared) > limit) {
    await res.body?.cancel()
    throw new Error(`${what} is over ${limit} bytes`)
  }
  if (res.body === null) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > limit) {
      await reader.cancel()
      throw new Error(`${what} is over ${limit} bytes`)
    }
    chunks.push(value)
  }
  const bytes = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return strictUtf8.decode(bytes)
}

/**
 * The usable keys of a `GET /v1/keys` body. Only the first MAX_KEYS entries are looked at; an
 * entry that is not an object, has a status other than `next`/`active`/`retiring`, a PASERK that
 * does not decode strictly, or a `kid` that is not its PASERK's id is skipped, never the whole set.
 * A body that is not `{"keys": [...]}`, or has no usable key at all, throws: Tessera always
 * publishes its active key, so an empty result means something else answered, and the old set is
 * kept.
 */
function parseKeySet(
  text: string,
  known: ReadonlyMap<string, PublicKey> | undefined,
): Map<string, PublicKey> {
  const body: unknown = JSON.parse(text)
  const entries = (body as { keys?: unknown } | null)?.keys
  if (body === null || typeof body !== 'object' || !Array.isArray(entries)) {
    throw new Error('key set response is not {"keys": [...]}')
  }
  const keys = new Map<string, PublicKey>()
  for (const entry of entries.slice(0, MAX_KEYS) as unknown[]) {
    if (entry === null || typeof entry !== 'object') continue
    const { kid, paserk, status } = entry as Record<string, unknown>
    if (!PUBLISHED_STATUSES.has(status)) continue
    try {
      const checked = checkedKey(kid, paserk, known)
      keys.set(checked.kid, checked.key)
    } catch {
      // One bad entry costs only itself.
    }
  }
  if (keys.size === 0) throw new Error('key set response holds no usable k4.public key')
  return keys
}

/**
 * Tessera's published keys, fetched from `url` and cached by `kid`.
 *
 * `resolve(kid)`:
 * - fetches when there is no key set yet or the cached one is stale (older than the response's
 *   `Cache-Control: max-age` less the `Age` a shared cache reports, else `maxAgeMs`), and
 *   otherwise answers from the cache;
 * - for a `kid` the set does not hold, refetches once and looks again, but only when the last fetch
 *   started at least `cooldownMs` ago: within the cooldown an unknown `kid` is simply unknown;
 * - never runs two fetches at once: concurrent callers share the one in flight;
 * - when a fetch fails (network error, timeout, non-200, over 64 KiB, not a key set) keeps the keys
 *   it had and logs nothing; the next attempt waits for the cooldown;
 * - throws `KeySetUnavailableError` while no fetch has ever succeeded (attempts are then at most
 *   one per second, or per cooldown if shorter).
 *
 * Entries are checked one by one (see `parseKeySet`): at most 32 are read; a key is used only when
 * its PASERK decodes strictly and its PASERK id equals the entry's `kid`. Redirects are not
 * followed. Clock steps backwards count as the cooldown and the freshness having elapsed.
 */
export function createRemoteKeySet(options: RemoteKeySetOptions): KeySet {
  const url = new URL(options.url)
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError('the keys URL must be http: or https:')
  }
  const fetchKeys = options.fetch ?? globalThis.fetch
  const timeoutMs = nonNegative('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS)
  const cooldownMs = nonNegative('cooldownMs', options.cooldownMs, DEFAULT_COOLDOWN_MS)
  const maxAgeMs = nonNegative('maxAgeMs', options.maxAgeMs, DEFAULT_MAX_AGE_MS)
  const now = options.now ?? Date.now

  let keys: ReadonlyMap<string, PublicKey> | undefined
  let fetchedAt = Number.NEGATIVE_INFINITY
  let freshUntil = Number.NEGATIVE_INFINITY
  let lastAttemptAt = Number.NEGATIVE_INFINITY
  let lastError: unknown
  let inFlight: Promise<void> | undefined

  async function download(): Promise<void> {
    const res = await fetchKeys(url, {
      headers: { accept: 'application/json' },
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (res.status !== 200) {
      await res.body?.cancel()
      throw new Error(`key set request answered ${res.status}`)
    }
    const next = parseKeySet(await readBounded(res, MAX_RESPONSE_BYTES), keys)
    const at = now()
    keys = next
    fetchedAt = at
    freshUntil =
      at + (freshnessMs(res.headers.get('cache-control'), res.headers.get('age')) ?? maxAgeMs)
    lastError = undefined
  }

  /** Starts a fetch, or joins the one in flight. Rejects when it fails; the old keys stay. */
  function load(): Promise<void> {
    if (inFlight === undefined) {
      lastAttemptAt = now()
      inFlight = download()
        .catch((error: unknown) => {
          lastError = error
          throw error
        })
        .finally(() => {
          inFlight = undefined
        })
    }
    return inFlight
  }

  /** Fetches if one is in flight (join it) or the cooldown allows a new one; never rejects. */
  async function refreshIfAllowed(): Promise<void> {
    if (inFlight === undefined) {
      const t = now()
      const gap = keys === undefined ? Math.min(cooldownMs, RETRY_WITHOUT_KEYS_MS) : cooldownMs
      if (t >= lastAttemptAt && t - lastAttemptAt < gap) return
    }
    try {
      await load()
    } catch {
      // Tessera briefly unreachable: keep serving the keys we have.
    }
  }

  return {
    async resolve(kid) {
      const t = now()
      if (keys === undefined || t >= freshUntil || t < fetchedAt) await refreshIfAllowed()
      if (keys === undefined) {
        throw new KeySetUnavailableError(
          `no key set fetched from ${url.origin}${url.pathname} yet`,
          lastError === undefined ? undefined : { cause: lastError },
        )
      }
      const key = keys.get(kid)
      if (key !== undefined) return key
      await refreshIfAllowed()
      return keys.get(kid)
    },
    reload: load,
  }
}
