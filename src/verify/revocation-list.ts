/**
 * The revocations a verifier holds in memory (docs/revocation.md, "Verifiers"): revoked sessions
 * and users by the published hashes of their ids, revoked keys by `kid`. A check is at most two
 * SHA-256 hashes (usually none: see `cachedHash`) and three Map lookups, whatever the number of
 * entries.
 */
import { hash } from 'node:crypto'

/**
 * How the feed names a session (`sid`) or a user (`sub`): the first 22 characters (132 bits) of
 * the unpadded base64url SHA-256 of `tessera-revocation:<sid|sub>:<id>`. The ids are random UUIDs,
 * so the public feed tells nothing to someone who does not already hold a token that names them.
 */
export function revocationHash(kind: 'sid' | 'sub', id: string): string {
  return hash('sha256', `tessera-revocation:${kind}:${id}`, 'base64url').slice(0, HASH_LENGTH)
}

export const HASH_LENGTH = 22

/** One entry of a verified feed document. */
export type FeedEntry =
  | { seq: number; sid: string; at: number }
  /** Every token of the user issued before `at` is revoked. */
  | { seq: number; sub: string; at: number }
  | { seq: number; kid: string; at: number }

/** Revoked keys kept: a key is revoked a few times in a deployment's life, never thousands. */
const MAX_KEYS = 1024

/**
 * Bounded by time: a session or user entry is dropped once no token it could refuse is still
 * accepted (its `at` plus the longest token lifetime plus the clock skew, given by the feed
 * client per entry). Revoked keys are kept for the process's life (at most MAX_KEYS): a key
 * may live on in a cached key set, and a leaked one can sign tokens with any `iat`.
 */
export class RevocationList {
  private readonly sessions = new Map<string, number>()
  private readonly users = new Map<string, { notBefore: number; until: number }>()
  private readonly keys = new Set<string>()
  /** Session and user entries in arrival order with their expiry, for pruning from the front. */
  private readonly queue: Array<{ kind: 'sid' | 'sub'; value: string; until: number }> = []
  private head = 0

  /** Entries held (sessions, users and keys). */
  get size(): number {
    return this.sessions.size + this.users.size + this.keys.size
  }

  /** Adds entries; `keepSeconds` past an entry's `at` it is dropped again (keys excepted). */
  add(entries: readonly FeedEntry[], keepSeconds: number): void {
    for (const entry of entries) {
      const until = entry.at + keepSeconds
      if ('sid' in entry) {
        this.sessions.set(entry.sid, Math.max(until, this.sessions.get(entry.sid) ?? 0))
        this.queue.push({ kind: 'sid', value: entry.sid, until })
      } else if ('sub' in entry) {
        const known = this.users.get(entry.sub)
        this.users.set(entry.sub, {
          notBefore: Math.max(entry.at, known?.notBefore ?? 0),
          until: Math.max(until, known?.until ?? 0),
        })
        this.queue.push({ kind: 'sub', value: entry.sub, until })
      } else {
        this.keys.delete(entry.kid)
        this.keys.add(entry.kid)
        if (this.keys.size > MAX_KEYS) this.keys.delete(this.keys.values().next().value!)
      }
    }
  }

  /** Drops the session and user entries that can no longer refuse a live token. */
  prune(nowSeconds: number): void {
    const queue = this.queue
    while (this.head < queue.length && queue[this.head]!.until < nowSeconds) {
      const { kind, value, until } = queue[this.head]!
      this.head++
      if (kind === 'sid') {
        if (this.sessions.get(value) === until) this.sessions.delete(value)
      } else if (this.users.get(value)?.until === until) {
        this.users.delete(value)
      }
    }
    // Compact once the dropped front outweighs what is left.
    if (this.head > 1024 && this.head * 2 > queue.length) {
      queue.splice(0, this.head)
      this.head = 0
    }
  }

  /** Whether this key was revoked (a document it signed is not believed either). */
  hasRevokedKey(kid: string): boolean {
    return this.keys.has(kid)
  }

  /**
   * Whether a token is revoked: its session is, its user is and the token was issued before
   * that (`iatSeconds` below the entry's `at`), or its key is.
   */
  isRevoked(sid: string, sub: string, iatSeconds: number, kid: string): boolean {
    if (this.sessions.size > 0 && this.sessions.has(cachedHash(sidHashes, 'sid', sid))) return true
    if (this.users.size > 0) {
      const user = this.users.get(cachedHash(subHashes, 'sub', sub))
      if (user !== undefined && iatSeconds < user.notBefore) return true
    }
    return this.keys.size > 0 && this.keys.has(kid)
  }
}

/**
 * Hashes of ids seen recently. A client presents one token for many requests, so most checks
 * find their hashes here instead of calling into SHA-256 twice. A pure function of the id;
 * bounded: emptied when full, as the footer cache of token.ts is.
 */
const sidHashes = new Map<string, string>()
const subHashes = new Map<string, string>()
const HASH_CACHE_SIZE = 4096

function cachedHash(cache: Map<string, string>, kind: 'sid' | 'sub', id: string): string {
  let hashed = cache.get(id)
  if (hashed === undefined) {
    hashed = revocationHash(kind, id)
    if (cache.size >= HASH_CACHE_SIZE) cache.clear()
    cache.set(id, hashed)
  }
  return hashed
}
