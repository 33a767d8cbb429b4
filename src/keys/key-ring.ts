import type { PublicKey } from '../paseto/ed25519.js'
import { decodeSecretPaserk, importPublicPaserk } from '../paseto/paserk.js'
import { importSecretKey, type SecretKey } from '../tokens/sign.js'
import {
  activeKey,
  ensureActiveKey,
  type KeyDeps,
  liveKeyRows,
  readSecretPaserk,
  SIGNER_CACHE_MS,
} from './signing-keys.js'

/** How often a process re-reads the published keys even when every kid it sees is known. */
const PUBLIC_CACHE_MS = 60_000
/** An unknown kid reloads the keys at most this often, so forged kids cannot flood the database. */
const UNKNOWN_KID_RELOAD_MS = 1_000

export interface Signer {
  kid: string
  key: SecretKey
}

/**
 * The process's view of the shared signing keys: the active key to sign with and the published
 * keys to verify with, both read from the database and cached briefly, so a rotation on one
 * replica reaches the others within seconds without any call between them.
 */
export interface KeyRing {
  signer(): Promise<Signer>
  publicKey(kid: string): Promise<PublicKey | undefined>
  /** Forgets cached keys (after a rotation in this process). */
  invalidate(): void
}

export function createKeyRing(deps: KeyDeps): KeyRing {
  let signer: { value: Signer; loadedAt: number } | undefined
  let signerLoad: Promise<Signer> | undefined
  let publicKeys = new Map<string, { key: PublicKey; retireAfter: number | null }>()
  let publicLoadedAt = Number.NEGATIVE_INFINITY
  let publicLoad: Promise<void> | undefined

  async function loadSigner(): Promise<Signer> {
    const row = (await activeKey(deps)) ?? (await ensureActiveKey(deps))
    if (signer?.value.kid === row.kid) {
      signer = { value: signer.value, loadedAt: deps.clock() }
      return signer.value
    }
    const value = {
      kid: row.kid,
      key: importSecretKey(decodeSecretPaserk(readSecretPaserk(deps, row))),
    }
    signer = { value, loadedAt: deps.clock() }
    return value
  }

  async function loadPublicKeys(): Promise<void> {
    const rows = await liveKeyRows(deps)
    const next = new Map<string, { key: PublicKey; retireAfter: number | null }>()
    for (const row of rows) {
      const known = publicKeys.get(row.kid)
      const retireAfter = row.status === 'active' ? null : row.retire_after
      next.set(row.kid, {
        key: known?.key ?? importPublicPaserk(row.public_paserk),
        retireAfter,
      })
    }
    publicKeys = next
    publicLoadedAt = deps.clock()
  }

  function reloadPublicKeys(): Promise<void> {
    publicLoad ??= loadPublicKeys().finally(() => {
      publicLoad = undefined
    })
    return publicLoad
  }

  return {
    async signer() {
      if (signer !== undefined && deps.clock() - signer.loadedAt < SIGNER_CACHE_MS)
        return signer.value
      signerLoad ??= loadSigner().finally(() => {
        signerLoad = undefined
      })
      return signerLoad
    },

    async publicKey(kid) {
      const now = deps.clock()
      const age = now - publicLoadedAt
      if (age >= PUBLIC_CACHE_MS || (!publicKeys.has(kid) && age >= UNKNOWN_KID_RELOAD_MS)) {
        await reloadPublicKeys()
      }
      const entry = publicKeys.get(kid)
      if (entry === undefined) return undefined
      if (entry.retireAfter !== null && entry.retireAfter <= deps.clock()) return undefined
      return entry.key
    },

    invalidate() {
      signer = undefined
      publicLoadedAt = Number.NEGATIVE_INFINITY
    },
  }
}
