/**
 * The access-token check used by Tessera itself and by resource services (`tessera/verify`).
 * Everything about the token's shape is settled before any key is looked up, and exactly one
 * Ed25519 verification is done per token.
 *
 * Why this does not go through `paseto`'s Verify (which `verifyV4Public` in src/paseto uses, and
 * which the official vectors exercise): on Node 20 its framing and claim handling cost about 26 µs
 * per access token, mostly a pure-JS canonical base64url check (`String.fromCharCode(...bytes)`
 * and `btoa`, as Node 20 has no `Uint8Array.prototype.toBase64`), against about 125 µs for the
 * signature itself, which caps verification at about 0.8 of raw `crypto.verify`;
 * docs/performance.md asks for 0.9. The framing here is the same (stricter where noted) and the
 * signature check is the very function bound into `paseto` for `verifyV4Public`.
 */
import { Buffer } from 'node:buffer'
import { decodeBase64urlStrict, isCanonicalBase64url } from '../paseto/base64url.js'
import { type PublicKey, verifyV4Signature } from '../paseto/ed25519.js'
import { parseJsonObjectStrict } from '../paseto/json.js'
import { parsePasetoTime } from '../paseto/time.js'
import { TokenError } from './errors.js'

/**
 * `client` is not an account: a service client's own token (the `client_credentials` grant;
 * README, "Service clients"), whose `sub` is the client id and which has no `email`.
 */
export type AccountType = 'regular' | 'academic' | 'service' | 'superuser' | 'client'

/** The claims of a Tessera access token (README, "Tokens"). */
export interface AccessTokenClaims {
  iss: string
  sub: string
  aud: string
  /** `YYYY-MM-DDTHH:MM:SSZ` */
  iat: string
  /** `YYYY-MM-DDTHH:MM:SSZ` */
  nbf: string
  /** `YYYY-MM-DDTHH:MM:SSZ` */
  exp: string
  jti: string
  /** Session (refresh-token family) id. */
  sid: string
  acct: AccountType
  /** Academic status (CILogon). */
  verified: boolean
  /** The account's email; absent only when `acct` is `client`. */
  email?: string
  /**
   * Whether the owner proved `email` (a mailed link or code, or a provider vouching for it).
   * Absent in tokens issued before Tessera added it; treat absent as unproven.
   */
  email_verified?: boolean
  role?: string
  /**
   * Space-separated scopes (README, "Scripts, pipelines and services"). A token without the
   * claim has no scope at all: `requireScope()` refuses it.
   */
  scope?: string
  /**
   * RFC 8176 authentication methods of the session's login (README, "Second factors"): `pwd`,
   * `otp`, `fed`, `hwk`, `swk`, `mfa`. Absent in tokens of sessions that predate it and in
   * personal and job tokens: treat absent as no second factor (`requireMfa()` refuses it).
   */
  amr?: string[]
}

export interface VerifyOptions {
  /** Expected `iss`, exactly. */
  issuer: string
  /** Expected `aud`, exactly; a list accepts any one of its names. */
  audience: string | ReadonlyArray<string>
  /** Allowed clock skew for `exp`, `nbf` and `iat`, in seconds. Default 30. */
  clockToleranceSeconds?: number
  /** The current time in milliseconds. Default `Date.now`. */
  now?: () => number
  /**
   * The longest lifetime a token may have, in seconds: `exp - iat` at most this, and `exp` at
   * most this (plus the clock tolerance) after now. Default 86400, the largest ACCESS_TOKEN_TTL
   * Tessera allows; a service that knows the deployment's ACCESS_TOKEN_TTL can set it lower.
   */
  maxLifetimeSeconds?: number
}

/**
 * Returns the verification key for a `kid` (a PASERK `k4.pid`), or undefined when the key set has
 * no such key. Keys must come from configuration or Tessera's keys endpoint, never from a token.
 */
export type KeyResolver = (kid: string) => PublicKey | undefined | Promise<PublicKey | undefined>

const MAX_TOKEN_LENGTH = 8 * 1024
const MAX_FOOTER_BYTES = 512
/** Longest canonical base64url of MAX_FOOTER_BYTES bytes: bounds the footer before decoding it. */
const MAX_FOOTER_CHARS = Math.ceil((MAX_FOOTER_BYTES * 4) / 3)
const FOOTER_MAX_DEPTH = 2
const PAYLOAD_MAX_DEPTH = 4
const SIGNATURE_BYTES = 64
const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30
/** The largest ACCESS_TOKEN_TTL Tessera allows (src/config/index.ts). */
const DEFAULT_MAX_LIFETIME_SECONDS = 86_400
const PREFIX = 'v4.public.'
/** Some other PASETO header (`v2.public.`, `V4.local.`): unsupported rather than garbage. */
const ANY_PASETO_HEADER = /^v\d+\.[a-z]+\./i
const KID_PATTERN = /^k4\.pid\.[A-Za-z0-9_-]{44}$/
const ACCOUNT_TYPES: ReadonlySet<unknown> = new Set<AccountType>([
  'regular',
  'academic',
  'service',
  'superuser',
  'client',
])
const STRING_CLAIMS = ['iss', 'sub', 'aud', 'jti', 'sid'] as const
/** More methods than any login records: a longer `amr` was not made by Tessera. */
const MAX_AMR_VALUES = 8
const AMR_VALUE = /^[a-z]{1,16}$/
const EMPTY = new Uint8Array(0)
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function invalidClaims(message: string, cause?: unknown): TokenError {
  return new TokenError('invalid_claims', message, cause === undefined ? undefined : { cause })
}

/**
 * The signed payload: UTF-8 JSON, an object with unique keys at every depth (PASETO spec) at most
 * PAYLOAD_MAX_DEPTH deep, and Tessera's profile: `iss`, `sub`, `aud`, `jti`, `sid`, `email`
 * non-empty strings (`email` absent for `acct: "client"`); `exp`, `nbf`, `iat` real instants
 * written exactly `YYYY-MM-DDTHH:MM:SSZ`; `acct` one of the five account types; `verified` a
 * boolean; `email_verified`, when present, a boolean; `role` and `scope`, when present, strings;
 * `amr`, when present, an array of at most MAX_AMR_VALUES short lower-case names. Other claims
 * are allowed and dropped. Returns the claims and the three times in milliseconds.
 */
function readAccessTokenPayload(message: Uint8Array): {
  claims: AccessTokenClaims
  exp: number
  nbf: number
  iat: number
} {
  let payload: Record<string, unknown>
  try {
    payload = parseJsonObjectStrict(strictUtf8.decode(message), { maxDepth: PAYLOAD_MAX_DEPTH })
  } catch (cause) {
    throw invalidClaims('payload is not a JSON object with unique keys', cause)
  }
  for (const name of STRING_CLAIMS) {
    const value = payload[name]
    if (typeof value !== 'string' || value.length === 0) {
      throw invalidClaims(`"${name}" must be a non-empty string`)
    }
  }
  const exp = timeClaim(payload, 'exp')
  const nbf = timeClaim(payload, 'nbf')
  const iat = timeClaim(payload, 'iat')
  if (!ACCOUNT_TYPES.has(payload.acct)) throw invalidClaims('"acct" is not an account type')
  const isClient = payload.acct === 'client'
  if (isClient ? Object.hasOwn(payload, 'email') : !nonEmptyString(payload.email)) {
    throw invalidClaims(
      isClient ? 'a client token has no "email"' : '"email" must be a non-empty string',
    )
  }
  if (typeof payload.verified !== 'boolean') throw invalidClaims('"verified" must be a boolean')
  const hasEmailVerified = Object.hasOwn(payload, 'email_verified')
  if (hasEmailVerified && typeof payload.email_verified !== 'boolean') {
    throw invalidClaims('"email_verified" must be a boolean')
  }
  const hasRole = Object.hasOwn(payload, 'role')
  if (hasRole && typeof payload.role !== 'string') throw invalidClaims('"role" must be a string')
  const hasScope = Object.hasOwn(payload, 'scope')
  if (hasScope && typeof payload.scope !== 'string') throw invalidClaims('"scope" must be a string')
  const hasAmr = Object.hasOwn(payload, 'amr')
  if (hasAmr && !isAmr(payload.amr)) {
    throw invalidClaims(`"amr" must be an array of at most ${MAX_AMR_VALUES} method names`)
  }
  // Only the fields checked above, copied out of the parsed object.
  const claims: AccessTokenClaims = {
    iss: payload.iss as string,
    sub: payload.sub as string,
    aud: payload.aud as string,
    iat: payload.iat as string,
    nbf: payload.nbf as string,
    exp: payload.exp as string,
    jti: payload.jti as string,
    sid: payload.sid as string,
    acct: payload.acct as AccountType,
    verified: payload.verified,
  }
  if (!isClient) claims.email = payload.email as string
  if (hasEmailVerified) claims.email_verified = payload.email_verified as boolean
  if (hasRole) claims.role = payload.role as string
  if (hasScope) claims.scope = payload.scope as string
  if (hasAmr) claims.amr = [...(payload.amr as string[])]
  return { claims, exp, nbf, iat }
}

function isAmr(value: unknown): value is string[] {
  return (
    Array.isArray(value) &&
    value.length <= MAX_AMR_VALUES &&
    value.every((item) => typeof item === 'string' && AMR_VALUE.test(item))
  )
}

function nonEmptyString(value: unknown): boolean {
  return typeof value === 'string' && value.length > 0
}

function timeClaim(payload: Record<string, unknown>, name: 'exp' | 'nbf' | 'iat'): number {
  const value = payload[name]
  const ms = typeof value === 'string' ? parsePasetoTime(value) : undefined
  if (ms === undefined) {
    throw invalidClaims(`"${name}" must be a UTC date-time written YYYY-MM-DDTHH:MM:SSZ`)
  }
  return ms
}

/**
 * Reads the `kid` from a token's footer. The footer is authenticated only once the signature
 * verifies, so before that its size and depth are bounded before parsing and nothing but `kid` is
 * read. Returns the decoded footer too: it is part of the signed input.
 */
function readFooter(footerB64: string): Footer {
  if (footerB64.length > MAX_FOOTER_CHARS) {
    throw new TokenError('bad_footer', `footer is over ${MAX_FOOTER_BYTES} bytes`)
  }
  let footer: Uint8Array
  try {
    footer = decodeBase64urlStrict(footerB64)
  } catch (cause) {
    throw new TokenError('malformed', 'footer is not canonical base64url', { cause })
  }
  let kid: unknown
  try {
    kid = parseJsonObjectStrict(strictUtf8.decode(footer), { maxDepth: FOOTER_MAX_DEPTH }).kid
  } catch (cause) {
    throw new TokenError('bad_footer', 'footer is not a small JSON object with unique keys', {
      cause,
    })
  }
  if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) {
    throw new TokenError('bad_footer', 'footer has no k4.pid "kid"')
  }
  return { footer: footer.slice(), kid }
}

export interface Footer {
  readonly footer: Uint8Array
  readonly kid: string
}

/**
 * Well-formed footers seen recently, by their base64url text. All tokens signed with one key carry
 * the same footer, so this saves decoding and parsing it on nearly every call; the answer depends
 * on the text alone. Bounded: emptied when full, so unique footers sent on purpose cost only the
 * parse they would have cost anyway.
 */
const footerCache = new Map<string, Footer>()
const FOOTER_CACHE_SIZE = 64

export function cachedFooter(footerB64: string): Footer {
  let entry = footerCache.get(footerB64)
  if (entry === undefined) {
    entry = readFooter(footerB64)
    if (footerCache.size >= FOOTER_CACHE_SIZE) footerCache.clear()
    footerCache.set(footerB64, entry)
  }
  return entry
}

/**
 * Verifies a Tessera access token and returns its claims and the `kid` that verified it.
 *
 * Checked, in this order (each failure is a `TokenError` with the reason given):
 * 1. at most 8 KiB (`malformed`); header exactly `v4.public.` (`unsupported_token` for any other
 *    PASETO header, `malformed` for non-tokens); exactly a payload and a footer segment, neither
 *    empty, in canonical unpadded base64url, the payload longer than a signature (`malformed`; a
 *    token without a footer is `bad_footer`);
 * 2. the footer: at most 512 bytes, a JSON object at most 2 deep with unique keys and a string
 *    `kid` of the form `k4.pid.` + 44 base64url characters (`bad_footer`); nothing else in the
 *    footer is read, and a key carried in it is never used;
 * 3. `resolveKey(kid)` (`unknown_key` when it returns undefined; its own errors propagate as they
 *    are);
 * 4. the Ed25519 signature over PAE("v4.public.", payload, footer, "") (`bad_signature`), once;
 * 5. the payload: a UTF-8 JSON object with unique keys at most 4 deep, and the claim profile:
 *    `iss`, `sub`, `aud`, `jti`, `sid`, `email` non-empty strings (no `email` when `acct` is
 *    `client`), `exp`, `nbf`, `iat` as `YYYY-MM-DDTHH:MM:SSZ`, `acct` an account type,
 *    `verified` a boolean, `role` and `scope` strings when present (`invalid_claims`);
 * 6. against `now`, with `clockToleranceSeconds` of skew either way: `exp` not passed
 *    (`expired`), `nbf` reached (`not_yet_valid`), `iat` not in the future (`issued_in_future`);
 *    the lifetime bounded by `maxLifetimeSeconds`: `exp - iat` no longer, and `exp` no further
 *    than that (plus the skew) from now (`lifetime_too_long`; with `iat` not in the future the
 *    first implies the second), so a token signed with a stolen or misused key cannot be made to
 *    last for years;
 *    then `aud` and `iss` exactly the expected values (`wrong_audience`, `wrong_issuer`).
 *
 * Not checked: whether the session (`sid`) or the user has been revoked or disabled since the
 * token was issued (ask Tessera's introspection endpoint for that), `jti` replay, and any
 * authorization decision on `acct`, `verified` or `role`. Implicit assertions are not
 * used. The returned claims hold only the fields above.
 */
export async function verifyAccessToken(
  token: string,
  resolveKey: KeyResolver,
  options: VerifyOptions,
  cache?: VerifiedTokenCache,
): Promise<{ claims: AccessTokenClaims; kid: string }> {
  const cached = cache?.get(token)
  if (cached !== undefined) {
    // The same key as verified it, still published: steps 1 to 5 gave this answer for this very
    // text; steps 6 and 7 depend on now and the options, and run again.
    if ((await resolveKey(cached.kid)) === cached.key) return checkedClaims(cached, options)
    cache!.delete(token)
  }
  const signed = await verifySignedToken(token, resolveKey)
  const result = checkedClaims(signed, options)
  cache?.set(token, signed)
  return result
}

/**
 * A token whose framing, footer, key and signature checked out and whose payload was read (steps
 * 1 to 5 of `verifyAccessToken`): what depends on the token's text and the key alone.
 */
export interface SignedToken {
  readonly kid: string
  readonly key: PublicKey
  readonly claims: Readonly<AccessTokenClaims>
  readonly exp: number
  readonly nbf: number
  readonly iat: number
}

/**
 * Tokens that verified recently, by their exact text, so that a client presenting one token many
 * times costs one Ed25519 verification (docs/performance.md). Only a token that passed steps 1 to 5
 * is kept, with the key object that verified it: a hit is used only while `resolveKey` still
 * returns that very object (a revoked or retired key, or a reloaded key set, is a miss), and the
 * time, audience and issuer checks run on every call. Bounded (the oldest entry is dropped when
 * full) and entries are dropped once past their `exp`; revocation of a session or a user is the
 * caller's check, after this one, as without a cache.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, SignedToken>()
  readonly #max: number
  readonly #now: () => number

  constructor(max = 4096, now: () => number = Date.now) {
    this.#max = max
    this.#now = now
  }

  get(token: string): SignedToken | undefined {
    const entry = this.#entries.get(token)
    if (entry !== undefined && entry.exp < this.#now()) {
      this.#entries.delete(token)
      return undefined
    }
    return entry
  }

  set(token: string, entry: SignedToken): void {
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next()
      if (oldest.done !== true) this.#entries.delete(oldest.value)
    }
    this.#entries.set(token, entry)
  }

  delete(token: string): void {
    this.#entries.delete(token)
  }

  get size(): number {
    return this.#entries.size
  }
}

/** Steps 1 to 5 of `verifyAccessToken`. */
async function verifySignedToken(token: string, resolveKey: KeyResolver): Promise<SignedToken> {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) {
    throw new TokenError('malformed', 'not a token, or longer than 8 KiB')
  }
  if (!token.startsWith(PREFIX)) {
    throw ANY_PASETO_HEADER.test(token)
      ? new TokenError('unsupported_token', 'only v4.public tokens are accepted')
      : new TokenError('malformed', 'not a PASETO token')
  }
  const dot = token.indexOf('.', PREFIX.length)
  if (dot === -1) throw new TokenError('bad_footer', 'token has no footer')
  if (token.indexOf('.', dot + 1) !== -1) throw new TokenError('malformed', 'too many segments')
  const payloadB64 = token.slice(PREFIX.length, dot)
  const footerB64 = token.slice(dot + 1)
  if (payloadB64.length === 0 || footerB64.length === 0) {
    throw new TokenError('malformed', 'empty token segment')
  }
  // Screened without decoding, so a bad token costs no copy; decoded once the key is known.
  if (!isCanonicalBase64url(payloadB64)) {
    throw new TokenError('malformed', 'payload is not canonical base64url')
  }
  if (Math.floor((payloadB64.length * 3) / 4) <= SIGNATURE_BYTES) {
    throw new TokenError('malformed', 'payload is no longer than a signature')
  }
  const { footer, kid } = cachedFooter(footerB64)

  const key = await resolveKey(kid)
  if (key === undefined) throw new TokenError('unknown_key', 'no key with this kid')

  const payload = Buffer.from(payloadB64, 'base64url')
  const message = payload.subarray(0, payload.byteLength - SIGNATURE_BYTES)
  const signature = payload.subarray(payload.byteLength - SIGNATURE_BYTES)
  if (!verifyV4Signature(key, message, signature, footer, EMPTY)) {
    throw new TokenError('bad_signature', 'token signature does not verify')
  }

  return { kid, key, ...readAccessTokenPayload(message) }
}

/** Steps 6 and 7 of `verifyAccessToken`; the claims are a copy the caller may keep. */
function checkedClaims(
  signed: SignedToken,
  options: VerifyOptions,
): { claims: AccessTokenClaims; kid: string } {
  const { exp, nbf, iat, kid } = signed
  const claims: AccessTokenClaims = { ...signed.claims }
  if (claims.amr !== undefined) claims.amr = [...claims.amr]
  const now = (options.now ?? Date.now)()
  const tolerance = (options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS) * 1000
  const maxLifetime = (options.maxLifetimeSeconds ?? DEFAULT_MAX_LIFETIME_SECONDS) * 1000
  if (!Number.isFinite(now) || !(tolerance >= 0) || !(maxLifetime > 0)) {
    throw new TypeError(
      'now() must be finite, clockToleranceSeconds non-negative and maxLifetimeSeconds positive',
    )
  }
  if (now > exp + tolerance) throw new TokenError('expired', 'token has expired')
  if (now + tolerance < nbf) throw new TokenError('not_yet_valid', 'token is not valid yet')
  if (now + tolerance < iat) {
    throw new TokenError('issued_in_future', 'token was issued in the future')
  }
  if (exp - iat > maxLifetime || exp - now > maxLifetime + tolerance) {
    throw new TokenError('lifetime_too_long', 'token lives longer than the allowed maximum')
  }
  const audience = options.audience
  if (typeof audience === 'string' ? claims.aud !== audience : !audience.includes(claims.aud)) {
    throw new TokenError('wrong_audience', 'unexpected "aud"')
  }
  if (claims.iss !== options.issuer) throw new TokenError('wrong_issuer', 'unexpected "iss"')
  return { claims, kid }
}
