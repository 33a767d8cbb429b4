import type { SigningKeyRow } from '../db/schema.js'
import type { PublicKey } from '../paseto/ed25519.js'
import { decodeSecretPaserk, importPublicPaserk } from '../paseto/paserk.js'
import { importSecretKey, type SecretKey } from '../tokens/sign.js'
import { promoteDueKey } from './rotation.js'
import {
  ensureActiveKey,
  type KeyDeps,
  liveKeyRows,
  readSecretPaserk,
  SIGNER_CACHE_MS,
} from './signing-keys.js'

/**
 * How old the process's view of the keys may be before a request reads them again: a revocation,
 * a promotion or a `--now` rotation made by another replica or by `tessera keys` reaches this
 * process within it. One small indexed read per second per process, never one per request.
 */
export const KEY_VIEW_REFRESH_MS = 1_000
/**
 * While the database cannot be read, tokens keep verifying against the last view for this long
 * (a short outage does not fail every request); after that Tessera's checks fail rather than
 * trust a view that may miss a revocation.
 */
const KEY_VIEW_MAX_STALE_MS = 60_000

export interface Signer {
  kid: string
  key: SecretKey
}

/**
 * The process's view of the shared signing keys: the active key to sign with and the published
 * keys to verify with, read from the database together and kept for a second, so a change on one
 * replica reaches the others within a second without any call between them.
 */
export interface KeyRing {
  /** The active key. A `next` key that is due is promoted first (src/keys/rotation.ts). */
  signer(): Promise<Signer>
  /** The published (next, active or still retiring) key with this kid, if any. */
  publicKey(kid: string): Promise<PublicKey | undefined>
  /** Forgets the view (after a change in this process), so the next call reads the keys. */
  invalidate(): void
}

interface KeyView {
  published: Map<string, { key: PublicKey; retireAfter: number | null }>
  active: SigningKeyRow | undefined
  next: SigningKeyRow | undefined
  loadedAt: number
}

export function createKeyRing(deps: KeyDeps): KeyRing {
  let view: KeyView | undefined
  let load: Promise<KeyView> | undefined
  let lastLoadFailed = false
  let lastAttemptAt = Number.NEGATIVE_INFINITY
  let signer: Signer | undefined
  let promotion: Promise<unknown> | undefined

  /** Milliseconds since `since`; a clock that stepped backwards counts as long ago. */
  const since = (at: number) => {
    const elapsed = deps.clock() - at
    return elapsed >= 0 ? elapsed : Number.POSITIVE_INFINITY
  }

  async function read(): Promise<KeyView> {
    const rows = await liveKeyRows(deps)
    const published = new Map<string, { key: PublicKey; retireAfter: number | null }>()
    for (const row of rows) {
      published.set(row.kid, {
        key: view?.published.get(row.kid)?.key ?? importPublicPaserk(row.public_paserk),
        retireAfter: row.status === 'retiring' ? row.retire_after : null,
      })
    }
    return {
      published,
      active: rows.find((row) => row.status === 'active'),
      next: rows.find((row) => row.status === 'next'),
      loadedAt: deps.clock(),
    }
  }

  /** Reads the keys, or joins the read in flight. */
  function reload(): Promise<KeyView> {
    if (load === undefined) {
      lastAttemptAt = deps.clock()
      load = read()
        .then(
          (fresh) => {
            view = fresh
            lastLoadFailed = false
            return fresh
          },
          (error: unknown) => {
            lastLoadFailed = true
            throw error
          },
        )
        .finally(() => {
          load = undefined
        })
    }
    return load
  }

  /**
   * The view, read again when it is a second old. When the read fails, a view younger than
   * `maxStaleMs` is used instead; while the database keeps failing, later calls use it at once and
   * retry in the background at most once a second, so requests do not each wait for the
   * database's connect timeout.
   */
  async function current(maxStaleMs: number): Promise<KeyView> {
    if (view === undefined) return reload()
    const age = since(view.loadedAt)
    if (age < KEY_VIEW_REFRESH_MS) return view
    const usable = age < maxStaleMs
    if (usable && lastLoadFailed) {
      if (load === undefined && since(lastAttemptAt) >= KEY_VIEW_REFRESH_MS) {
        reload().catch(() => {})
      }
      return view
    }
    try {
      return await reload()
    } catch (error) {
      if (usable) return view
      throw error
    }
  }

  function signerFor(row: SigningKeyRow): Signer {
    if (signer?.kid !== row.kid) {
      const key = importSecretKey(decodeSecretPaserk(readSecretPaserk(deps, row)))
      signer = { kid: row.kid, key }
    }
    return signer
  }

  return {
    async signer() {
      // Never sign from a view older than SIGNER_CACHE_MS: the retiring window allows no more.
      let keys = await current(SIGNER_CACHE_MS)
      const due = keys.next?.activates_at
      if (due !== undefined && due !== null && due <= deps.clock()) {
        // Concurrent signers of this process share one attempt; other processes race in the
        // database, where exactly one wins (src/keys/rotation.ts, rule 2).
        promotion ??= promoteDueKey(deps).finally(() => {
          promotion = undefined
        })
        await promotion
        keys = await reload()
      }
      if (keys.active === undefined) {
        // Only a database whose keys were changed by hand: every path that ends the active key
        // makes its successor in the same transaction.
        await ensureActiveKey(deps)
        keys = await reload()
      }
      if (keys.active === undefined) throw new Error('no active signing key')
      return signerFor(keys.active)
    },

    async publicKey(kid) {
      const fresh = view !== undefined && since(view.loadedAt) < KEY_VIEW_REFRESH_MS
      const keys = fresh ? view! : await current(KEY_VIEW_MAX_STALE_MS)
      const entry = keys.published.get(kid)
      if (entry === undefined) return undefined
      if (entry.retireAfter !== null && entry.retireAfter <= deps.clock()) return undefined
      return entry.key
    },

    invalidate() {
      if (view !== undefined) view = { ...view, loadedAt: Number.NEGATIVE_INFINITY }
    },
  }
}
