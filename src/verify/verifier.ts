/**
 * A ready-made access-token verifier for resource services: a key set (Tessera's keys endpoint or
 * configured keys) bound to the issuer, audience and clock the service expects.
 */
import {
  type ConfiguredKey,
  createLocalKeySet,
  createRemoteKeySet,
  type KeySet,
} from './key-set.js'
import {
  createRevocationFeed,
  type RevocationFeed,
  type RevocationOptions,
  type RevocationStatus,
} from './revocation-feed.js'
import { type AccessTokenClaims, verifyAccessToken } from './token.js'

/** Where the verifier's keys come from. */
export type VerifierKeySource =
  /** Tessera's `GET /v1/keys`, fetched and cached by `createRemoteKeySet`. */
  | { keysUrl: string | URL }
  /** Keys from configuration (`createLocalKeySet`); checked at creation. */
  | { keys: ReadonlyArray<ConfiguredKey> }
  /** A key set made by the caller. */
  | { keySet: KeySet }

export interface VerifierOptions {
  /** Expected `iss`, exactly: Tessera's `TESSERA_ISSUER`. */
  issuer: string
  /** Expected `aud`, exactly: Tessera's `TESSERA_AUDIENCE`. */
  audience: string
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds. Default 30. */
  clockToleranceSeconds?: number
  /** The current time in milliseconds, for the claims and the key cache. Default `Date.now`. */
  now?: () => number
  /**
   * Longest accepted token lifetime in seconds (`exp - iat`, and `exp` from now). Default 86400,
   * the largest ACCESS_TOKEN_TTL Tessera allows; set it to the deployment's ACCESS_TOKEN_TTL to
   * refuse anything longer (`lifetime_too_long`).
   */
  maxLifetimeSeconds?: number
  /** For `keysUrl`: the fetch to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch
  /** For `keysUrl`: least time between refetches for unknown `kid`s, in ms. Default 30000. */
  cooldownMs?: number
  /** For `keysUrl`: fetch timeout in ms. Default 5000. */
  timeoutMs?: number
  /** For `keysUrl`: cache lifetime when the response has no `max-age`, in ms. Default 600000. */
  maxAgeMs?: number
  /**
   * Follow Tessera's revocation feed and refuse revoked tokens (`TokenError` `revoked`):
   * `{ stream: true }` (Server-Sent Events, revocations arrive within about a second) or
   * `{ poll: { intervalMs } }` (default 5000). See `RevocationOptions` for the URL, staleness and
   * failing closed. Default: no revocation checks.
   */
  revocations?: RevocationOptions
}

export interface Verifier {
  /**
   * The claims of a valid access token. Throws `TokenError` (its `reason` says why: `malformed`,
   * `unsupported_token`, `bad_footer`, `unknown_key`, `bad_signature`, `invalid_claims`, `expired`,
   * `not_yet_valid`, `issued_in_future`, `lifetime_too_long`, `wrong_issuer`, `wrong_audience`) for
   * a bad token (`revoked` too, with `revocations`), `KeySetUnavailableError` when a remote key
   * set has never been fetched, and `RevocationsUnavailableError` when failing closed for want of
   * a fresh revocation feed (`revocations.failClosedAfterSeconds`).
   */
  verify(token: string): Promise<AccessTokenClaims>
  /** The revocation feed's state (for a health check or a metric); undefined without one. */
  revocationStatus(): RevocationStatus | undefined
  /** Stops following the revocation feed (closes its stream or poll timer). */
  close(): void
}

/**
 * Makes a verifier for Tessera access tokens.
 *
 * Checked (all of `verifyAccessToken`): the `v4.public` framing and canonical encoding, the footer
 * `kid` (only it is read from the footer) and that the key set holds it (`unknown_key`
 * otherwise, after at most one rate-limited refetch), the Ed25519 signature, the claim types,
 * `exp`/`nbf`/`iat` against `now` with `clockToleranceSeconds` of skew, the lifetime against
 * `maxLifetimeSeconds`, and `iss` and `aud`
 * exactly.
 *
 * Revocation, with `options.revocations`: the verifier follows Tessera's signed revocation feed
 * and refuses, with reason `revoked`, a token whose session has ended (logout, logout-all, a
 * session deleted, refresh-token reuse, a password change, a disable), whose user was disabled
 * after it was issued, or whose key was revoked (docs/revocation.md). Without it a token stays
 * valid until its `exp` (15 min by default) even after all of that.
 *
 * Not checked: `jti` replay, nor any authorization decision on `acct`, `verified` or `role` (see
 * `requireVerified`, `requireAccountType`).
 */
export function createVerifier(source: VerifierKeySource, options: VerifierOptions): Verifier {
  const { issuer, audience, clockToleranceSeconds, now, maxLifetimeSeconds } = options
  if (
    typeof issuer !== 'string' ||
    issuer === '' ||
    typeof audience !== 'string' ||
    audience === ''
  ) {
    throw new TypeError('createVerifier needs a non-empty issuer and audience')
  }
  let keySet: KeySet
  if ('keySet' in source) {
    keySet = source.keySet
  } else if ('keys' in source) {
    keySet = createLocalKeySet(source.keys)
  } else if ('keysUrl' in source) {
    keySet = createRemoteKeySet({
      url: source.keysUrl,
      fetch: options.fetch,
      cooldownMs: options.cooldownMs,
      timeoutMs: options.timeoutMs,
      maxAgeMs: options.maxAgeMs,
      now,
    })
  } else {
    throw new TypeError('createVerifier needs { keysUrl }, { keys } or { keySet }')
  }
  const resolveKey = (kid: string) => keySet.resolve(kid)
  const verifyOptions = { issuer, audience, clockToleranceSeconds, now, maxLifetimeSeconds }
  const feed =
    options.revocations === undefined
      ? undefined
      : revocationFeed(source, options, options.revocations, feedKeyResolver(keySet, now))
  return {
    async verify(token) {
      const { claims, kid } = await verifyAccessToken(token, resolveKey, verifyOptions)
      // check() answers synchronously once the feed has synced: no await on the hot path.
      const pending = feed?.check(claims, kid)
      if (pending !== undefined) await pending
      return claims
    },
    revocationStatus: () => feed?.status(),
    close: () => feed?.close(),
  }
}

/** Least time between two key-set reloads asked for by feed documents, in ms. */
const FEED_KEY_RELOAD_MS = 1_000

/**
 * The keys feed documents are checked with. A key that became active just now (`keys revoke` of
 * the active key, `keys rotate --now`) signs the feed at once, and the entry that revokes the old
 * key travels in a document signed by the new one: waiting out the key set's cooldown (30 s, kept
 * for tokens, whose `kid` anyone can forge) would hold that entry back for as long
 * (docs/revocation.md, "Verifiers"). Feed documents come only from the configured feed URL,
 * so an unknown `kid` in one reloads the key set at once, at most once a second.
 */
function feedKeyResolver(
  keySet: KeySet,
  now: () => number = Date.now,
): (kid: string) => ReturnType<KeySet['resolve']> {
  let lastReload = Number.NEGATIVE_INFINITY
  return async (kid) => {
    const key = await keySet.resolve(kid)
    const t = now()
    if (key !== undefined || (t >= lastReload && t - lastReload < FEED_KEY_RELOAD_MS)) return key
    lastReload = t
    try {
      await keySet.reload()
    } catch {
      // Tessera unreachable: the document stays unverifiable and the feed retries.
      return undefined
    }
    return keySet.resolve(kid)
  }
}

/** The feed client for `revocations`, at its URL or, by default, beside the keys URL. */
function revocationFeed(
  source: VerifierKeySource,
  options: VerifierOptions,
  revocations: RevocationOptions,
  resolveKey: (kid: string) => ReturnType<KeySet['resolve']>,
): RevocationFeed {
  let url: URL
  if (revocations.url !== undefined) {
    url = new URL(revocations.url)
  } else if ('keysUrl' in source && /\/keys\/?$/.test(new URL(source.keysUrl).pathname)) {
    url = new URL(source.keysUrl)
    url.pathname = url.pathname.replace(/\/keys\/?$/, '/revocations')
    url.search = ''
  } else {
    throw new TypeError('revocations.url is required unless keysUrl ends in /keys')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError('the revocations URL must be http: or https:')
  }
  return createRevocationFeed({
    url,
    mode: revocations,
    resolveKey,
    issuer: options.issuer,
    clockToleranceSeconds: options.clockToleranceSeconds ?? 30,
    maxLifetimeSeconds: options.maxLifetimeSeconds ?? 86_400,
    now: options.now ?? Date.now,
    fetch: options.fetch ?? globalThis.fetch,
    timeoutMs: options.timeoutMs ?? 5_000,
    staleAfterSeconds: revocations.staleAfterSeconds,
    failClosedAfterSeconds: revocations.failClosedAfterSeconds,
  })
}
