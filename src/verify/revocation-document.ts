/**
 * The signed documents of Tessera's revocation feed (`GET /v1/revocations` and each event of
 * `GET /v1/revocations/stream`; docs/revocation.md, "The feed"): a `v4.public` PASETO signed with
 * Tessera's current signing key, so a relay or cache can neither forge entries nor drop some
 * silently, and short-lived, so an old page cannot be replayed for long.
 *
 * A document is signed with the implicit assertion REVOCATION_DOCUMENT_ASSERTION and an access
 * token with none: the signature of one can never verify as the other, whatever the claims say.
 */
import { Buffer } from 'node:buffer'
import { isCanonicalBase64url } from '../paseto/base64url.js'
import { verifyV4Signature } from '../paseto/ed25519.js'
import { parseJsonObjectStrict } from '../paseto/json.js'
import { parsePasetoTime } from '../paseto/time.js'
import { type FeedEntry, HASH_LENGTH } from './revocation-list.js'
import { cachedFooter, type KeyResolver } from './token.js'

/** PASETO v4 implicit assertion of every feed document (and of nothing else Tessera signs). */
export const REVOCATION_DOCUMENT_ASSERTION: Uint8Array = new TextEncoder().encode(
  'tessera-revocation-feed-v1',
)
/** Tessera sends at most 1000 entries per document (about 80 KB); this leaves room. */
export const MAX_DOCUMENT_CHARS = 512 * 1024
const MAX_ENTRIES = 5000
/** Tessera's documents live 60 s; a longer one was not made by its rules. */
const MAX_DOCUMENT_LIFETIME_MS = 300_000
const PREFIX = 'v4.public.'
const SIGNATURE_BYTES = 64
const PAYLOAD_MAX_DEPTH = 3
const HASHED = new RegExp(`^[A-Za-z0-9_-]{${HASH_LENGTH}}$`)
const KID_PATTERN = /^k4\.pid\.[A-Za-z0-9_-]{44}$/
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** A feed document that is not what Tessera signs; `message` says what is wrong. */
export class RevocationDocumentError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RevocationDocumentError'
  }
}

/** A verified feed document. */
export interface RevocationDocument {
  /** The cursor the entries follow: every entry with a cursor in (after, next] is here. */
  after: number
  /** The cursor to ask for next (the last entry's, or `after` when there are none). */
  next: number
  /** More entries follow `next` already: ask again at once. */
  more: boolean
  /** Tessera's ACCESS_TOKEN_TTL, seconds: how long after its `at` an entry can matter. */
  ttl: number
  /** Epoch ms: when Tessera last confirmed the log up to `next` (`iat`). */
  issuedAt: number
  /** Epoch ms (`exp`). */
  expiresAt: number
  entries: FeedEntry[]
}

export interface RevocationDocumentOptions {
  /** Expected `iss`, exactly. */
  issuer: string
  /** Allowed clock skew for `iat` and `exp`, in seconds. Default 30. */
  clockToleranceSeconds?: number
  /** The current time in milliseconds. Default `Date.now`. */
  now?: () => number
}

const fail = (message: string, cause?: unknown): never => {
  throw new RevocationDocumentError(message, cause === undefined ? undefined : { cause })
}

const isCursor = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/**
 * Verifies a feed document and returns its content. Refused (`RevocationDocumentError`): anything
 * that is not a `v4.public` token with a `kid` footer, a key the resolver does not know, a
 * signature that does not verify with the feed's implicit assertion (so an access token, or a
 * document cut short or altered in transit), another issuer, an expired document (past `exp` plus
 * the skew) or one issued in the future, and content that breaks the format: cursors that are not
 * non-negative integers, entries out of order or outside (after, next], an entry with a malformed
 * hash or `kid`. Entries of a kind this version does not know are skipped (forward
 * compatibility). Errors of the resolver propagate.
 */
export async function verifyRevocationDocument(
  token: string,
  resolveKey: KeyResolver,
  options: RevocationDocumentOptions,
): Promise<RevocationDocument> {
  if (typeof token !== 'string' || token.length > MAX_DOCUMENT_CHARS) {
    fail('not a feed document, or too long')
  }
  if (!token.startsWith(PREFIX)) fail('not a v4.public token')
  const dot = token.indexOf('.', PREFIX.length)
  if (dot === -1 || token.indexOf('.', dot + 1) !== -1) fail('not a payload and a footer')
  const payloadB64 = token.slice(PREFIX.length, dot)
  if (!isCanonicalBase64url(payloadB64) || (payloadB64.length * 3) / 4 <= SIGNATURE_BYTES) {
    fail('payload is not canonical base64url')
  }
  let kid: string
  let footer: Uint8Array
  try {
    ;({ kid, footer } = cachedFooter(token.slice(dot + 1)))
  } catch (cause) {
    return fail('bad footer', cause)
  }
  const key = await resolveKey(kid)
  if (key === undefined) fail('signed with an unknown key')
  const payload = Buffer.from(payloadB64, 'base64url')
  const message = payload.subarray(0, payload.byteLength - SIGNATURE_BYTES)
  const signature = payload.subarray(payload.byteLength - SIGNATURE_BYTES)
  if (!verifyV4Signature(key!, message, signature, footer, REVOCATION_DOCUMENT_ASSERTION)) {
    fail('signature does not verify')
  }

  let claims: Record<string, unknown>
  try {
    claims = parseJsonObjectStrict(strictUtf8.decode(message), { maxDepth: PAYLOAD_MAX_DEPTH })
  } catch (cause) {
    return fail('payload is not a JSON object with unique keys', cause)
  }
  if (claims.iss !== options.issuer) fail('unexpected "iss"')
  const issuedAt = typeof claims.iat === 'string' ? parsePasetoTime(claims.iat) : undefined
  const expiresAt = typeof claims.exp === 'string' ? parsePasetoTime(claims.exp) : undefined
  if (issuedAt === undefined || expiresAt === undefined) fail('"iat" and "exp" must be times')
  const now = (options.now ?? Date.now)()
  const tolerance = (options.clockToleranceSeconds ?? 30) * 1000
  if (expiresAt! <= issuedAt! || expiresAt! - issuedAt! > MAX_DOCUMENT_LIFETIME_MS) {
    fail('document lifetime out of bounds')
  }
  if (now > expiresAt! + tolerance) fail('document has expired')
  if (now + tolerance < issuedAt!) fail('document was issued in the future')
  const { after, next, more, ttl, entries } = claims
  if (!isCursor(after) || !isCursor(next) || next < after) fail('bad "after" or "next"')
  if (typeof more !== 'boolean') fail('"more" must be a boolean')
  if (!isCursor(ttl) || ttl === 0) fail('"ttl" must be a positive integer')
  if (!Array.isArray(entries) || entries.length > MAX_ENTRIES) fail('bad "entries"')
  return {
    after: after as number,
    next: next as number,
    more: more as boolean,
    ttl: ttl as number,
    issuedAt: issuedAt!,
    expiresAt: expiresAt!,
    entries: readEntries(entries as unknown[], after as number, next as number),
  }
}

function readEntries(raw: unknown[], after: number, next: number): FeedEntry[] {
  const entries: FeedEntry[] = []
  let last = after
  for (const item of raw) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) fail('bad entry')
    const { seq, at, sid, sub, kid } = item as Record<string, unknown>
    if (!isCursor(seq) || seq <= last || seq > next) fail('entry cursors out of order')
    if (!isCursor(at)) fail('entry "at" must be epoch seconds')
    last = seq as number
    const named = [sid, sub, kid].filter((v) => v !== undefined).length
    if (named > 1) fail('an entry names one of "sid", "sub", "kid"')
    if (sid !== undefined || sub !== undefined) {
      const value = sid ?? sub
      if (typeof value !== 'string' || !HASHED.test(value)) fail('bad entry hash')
      entries.push(
        sid !== undefined
          ? { seq: seq as number, sid: value as string, at: at as number }
          : { seq: seq as number, sub: value as string, at: at as number },
      )
    } else if (kid !== undefined) {
      if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) fail('bad entry "kid"')
      entries.push({ seq: seq as number, kid: kid as string, at: at as number })
    }
    // Otherwise a kind this version does not know: skipped.
  }
  if (raw.length > 0 ? last !== next : next !== after) fail('"next" is not the last cursor')
  return entries
}
