import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import type { KeyRing } from '../keys/key-ring.js'
import { formatPasetoTime } from '../paseto/time.js'
import { longestTokenLifetime } from '../tokens/lifetime.js'
import { signV4Public } from '../tokens/sign.js'
import { REVOCATION_DOCUMENT_ASSERTION } from '../verify/revocation-document.js'
import { type FeedEntry, revocationHash } from '../verify/revocation-list.js'
import { type RevocationEntry, readRevocations, revocationHead } from './log.js'

/** How long a feed document is valid: short, so a relay cannot replay an old page for long. */
export const DOCUMENT_LIFETIME_MS = 60_000
/** Entries per document (about 80 KB signed); a page that holds more says `more`. */
export const DOCUMENT_ENTRIES = 1000

export interface DocumentDeps {
  keys: KeyRing
  config: Pick<Config, 'issuer' | 'accessTokenTtl'> & Partial<Pick<Config, 'jobTokenMaxTtl'>>
}

export interface FeedPage {
  after: number
  next: number
  more: boolean
  entries: readonly RevocationEntry[]
  /** Epoch ms at which the log was known to hold exactly these entries after `after`. */
  asOf: number
}

/**
 * The published form of an entry: sessions and users by the hash of their id (the raw ids stay
 * inside Tessera), keys by `kid` (public anyway, in `GET /v1/keys`); `at` in epoch seconds,
 * rounded up, so a user's not-before never falls before the instant of the change.
 */
function published(entry: RevocationEntry): FeedEntry {
  const at = Math.ceil(entry.at / 1000)
  switch (entry.kind) {
    case 'session':
      return { seq: entry.seq, sid: revocationHash('sid', entry.subject), at }
    case 'user':
      return { seq: entry.seq, sub: revocationHash('sub', entry.subject), at }
    case 'key':
      return { seq: entry.seq, kid: entry.subject, at }
  }
}

/**
 * Signs a feed page with the current signing key and the feed's implicit assertion
 * (docs/revocation.md, "The feed"): `iat` is when the log was known to be so (`asOf`), `exp` a
 * minute later.
 */
export async function signFeedPage(deps: DocumentDeps, page: FeedPage): Promise<string> {
  const issuedAt = Math.floor(page.asOf / 1000) * 1000
  const signer = await deps.keys.signer()
  return signV4Public(
    signer.key,
    {
      iss: deps.config.issuer,
      iat: formatPasetoTime(issuedAt),
      exp: formatPasetoTime(issuedAt + DOCUMENT_LIFETIME_MS),
      after: page.after,
      next: page.next,
      more: page.more,
      ttl: longestTokenLifetime(deps.config),
      entries: page.entries.map(published),
    },
    Buffer.from(JSON.stringify({ kid: signer.kid })),
    { implicitAssertion: REVOCATION_DOCUMENT_ASSERTION },
  )
}

/** Builds a page from up to `limit + 1` rows read after `after` (the extra one means `more`). */
export function pageOf(
  rows: readonly RevocationEntry[],
  after: number,
  asOf: number,
  limit = DOCUMENT_ENTRIES,
): FeedPage {
  const entries = rows.slice(0, limit)
  return {
    after,
    next: entries.length === 0 ? after : entries[entries.length - 1]!.seq,
    more: rows.length > limit,
    entries,
    asOf,
  }
}

export interface PullDeps extends DocumentDeps {
  db: Kysely<Database>
  clock: Clock
}

/**
 * `GET /v1/revocations?after=`: the signed page of entries after the cursor, read from the
 * database (so a pull right after a revocation sees it, on any replica). A cursor beyond the log's
 * head means the log was restored from an older backup and counts again from there: the page then
 * starts at 0, and the caller's cursor follows its `next` (docs/revocation.md, "The cursor").
 */
export async function pullFeed(deps: PullDeps, after: number): Promise<string> {
  // The time is taken before the read, so `iat` never claims more than the read saw.
  const asOf = deps.clock()
  let start = after
  let rows = await readRevocations(deps.db, after, DOCUMENT_ENTRIES + 1)
  if (rows.length === 0 && after > 0 && (await revocationHead(deps.db)) < after) {
    start = 0
    rows = await readRevocations(deps.db, 0, DOCUMENT_ENTRIES + 1)
  }
  return signFeedPage(deps, pageOf(rows, start, asOf))
}
