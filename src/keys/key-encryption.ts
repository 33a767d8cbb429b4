import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import {
  chmodSync,
  existsSync,
  linkSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { resolve } from 'node:path'
import { pooledRandomBytes } from './random-pool.js'

/**
 * Secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from KEY_ENCRYPTION_KEY, one
 * derived key per purpose (its HKDF label), so a ciphertext of one purpose never opens as
 * another's. The additional authenticated data names the row the ciphertext belongs to (a signing
 * key's id, a refresh token's row id), so it cannot be moved to another row.
 */
const PREFIX = 'enc.v1.'

/** The HKDF labels: one per kind of secret sealed under KEY_ENCRYPTION_KEY. */
export type SealPurpose =
  | 'signing-key-encryption v1'
  | 'refresh-replay v1'
  | 'mail-data v1'
  | 'totp-secret v1'

/**
 * The derived keys, by key-encryption key and then purpose: HKDF and the key import ran on every
 * seal, about 5 % of a refresh (docs/performance.md, "Refresh on SQLite"). A derived key is only
 * ever looked up under the key-encryption key it came from, never shared across keys. A process
 * has one key-encryption key; the bound keeps a process that is handed many (tests) from keeping
 * them all.
 */
const derived = new Map<string, Map<SealPurpose, KeyObject>>()
const MAX_KEYS = 8

function deriveKey(keyEncryptionKey: string, purpose: SealPurpose): KeyObject {
  let byPurpose = derived.get(keyEncryptionKey)
  if (byPurpose === undefined) {
    if (derived.size >= MAX_KEYS) derived.delete(derived.keys().next().value as string)
    byPurpose = new Map()
    derived.set(keyEncryptionKey, byPurpose)
  }
  let key = byPurpose.get(purpose)
  if (key === undefined) {
    const bytes = Buffer.from(hkdfSync('sha256', keyEncryptionKey, 'tessera', purpose, 32))
    key = createSecretKey(bytes)
    bytes.fill(0)
    byPurpose.set(purpose, key)
  }
  return key
}

export function isEncryptedSecret(stored: string): boolean {
  return stored.startsWith(PREFIX)
}

/** Seals `plaintext` for `purpose`, bound to `boundTo` (the row it is stored in). */
export function seal(
  keyEncryptionKey: string,
  purpose: SealPurpose,
  boundTo: string,
  plaintext: string,
): string {
  // A GCM nonce must never repeat under one key: the pool hands each random byte out once.
  const iv = pooledRandomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', deriveKey(keyEncryptionKey, purpose), iv)
  cipher.setAAD(Buffer.from(boundTo))
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return (
    PREFIX + [iv, ciphertext, cipher.getAuthTag()].map((b) => b.toString('base64url')).join('.')
  )
}

/**
 * Opens what `seal` made with the same key, purpose and row; undefined when it is not in the
 * sealed format or does not authenticate (another key, purpose or row, or altered bytes).
 */
export function unseal(
  keyEncryptionKey: string,
  purpose: SealPurpose,
  boundTo: string,
  stored: string,
): string | undefined {
  const parts = stored.slice(PREFIX.length).split('.')
  if (!isEncryptedSecret(stored) || parts.length !== 3) return undefined
  const [iv, ciphertext, tag] = parts.map((p) => Buffer.from(p, 'base64url')) as [
    Buffer,
    Buffer,
    Buffer,
  ]
  try {
    const decipher = createDecipheriv('aes-256-gcm', deriveKey(keyEncryptionKey, purpose), iv)
    decipher.setAAD(Buffer.from(boundTo))
    decipher.setAuthTag(tag)
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
  } catch {
    return undefined
  }
}

/** A signing key's secret, sealed to its key id. */
export function encryptSecret(keyEncryptionKey: string, kid: string, plaintext: string): string {
  return seal(keyEncryptionKey, 'signing-key-encryption v1', kid, plaintext)
}

export function decryptSecret(keyEncryptionKey: string, kid: string, stored: string): string {
  const parts = stored.slice(PREFIX.length).split('.')
  if (!isEncryptedSecret(stored) || parts.length !== 3) {
    throw new Error(`Signing key ${kid} is not in the encrypted format`)
  }
  const plaintext = unseal(keyEncryptionKey, 'signing-key-encryption v1', kid, stored)
  if (plaintext === undefined) {
    throw new Error(`Signing key ${kid} cannot be decrypted: wrong KEY_ENCRYPTION_KEY?`)
  }
  return plaintext
}

/** Where an SQLite database's generated key-encryption key lives: beside the database file. */
export function keyFileBeside(databasePath: string): string {
  return `${resolve(databasePath)}.kek`
}

interface KeySource {
  databaseUrl: string
  keyEncryptionKey: string | undefined
  keyEncryptionKeyFile: string | undefined
}

interface KeyLog {
  info(message: string): void
  warn(message: string): void
}

const MIN_KEY_LENGTH = 32

/**
 * The key-encryption key to use (README, "Keys"): KEY_ENCRYPTION_KEY, or the contents of
 * KEY_ENCRYPTION_KEY_FILE, or for an SQLite file a key generated on first start into a 0600 file
 * beside the database, so keys are never stored in clear by default. PostgreSQL has no "beside":
 * replicas must share one key, so without one configured it refuses to start. An in-memory SQLite
 * database gets a key that lives as long as the database does.
 */
export function resolveKeyEncryptionKey(source: KeySource, log: KeyLog): string {
  if (source.keyEncryptionKey !== undefined) return source.keyEncryptionKey
  if (source.keyEncryptionKeyFile !== undefined) {
    return readKeyFile(source.keyEncryptionKeyFile, log, { owned: false })
  }
  if (!source.databaseUrl.startsWith('sqlite:')) {
    throw new Error(
      'PostgreSQL needs KEY_ENCRYPTION_KEY or KEY_ENCRYPTION_KEY_FILE ' +
        '(every replica must use the same key)',
    )
  }
  const path = source.databaseUrl.slice('sqlite:'.length)
  if (path === ':memory:') return randomBytes(32).toString('base64url')
  const file = keyFileBeside(path)
  if (existsSync(file)) return readKeyFile(file, log, { owned: true })
  // Written under a private name and linked into place: a second process starting at the same
  // moment either wins the link or reads a complete file, never a half-written one.
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`
  writeFileSync(temporary, `${randomBytes(32).toString('base64url')}\n`, {
    mode: 0o600,
    flag: 'wx',
  })
  try {
    linkSync(temporary, file)
    log.info(
      `KEY_ENCRYPTION_KEY is not set: generated a key-encryption key in ${file}; ` +
        'back it up apart from the database',
    )
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  } finally {
    unlinkSync(temporary)
  }
  return readKeyFile(file, log, { owned: true })
}

/**
 * Reads a key file. Tessera tightens only the file it generated itself (`owned`): an operator's
 * KEY_ENCRYPTION_KEY_FILE may be a Docker or Kubernetes secret (root-owned, 0444 or 0644, on a
 * read-only file system) or shared with a group on purpose, so an open mode there is reported,
 * not changed, and never stops the start.
 */
function readKeyFile(file: string, log: KeyLog, options: { owned: boolean }): string {
  let key: string
  try {
    if ((statSync(file).mode & 0o077) !== 0) tightenOrWarn(file, log, options.owned)
    key = readFileSync(file, 'utf8').trim()
  } catch (cause) {
    throw new Error(`KEY_ENCRYPTION_KEY_FILE ${file} cannot be read`, { cause })
  }
  if (key.length < MIN_KEY_LENGTH) {
    throw new Error(
      `KEY_ENCRYPTION_KEY_FILE ${file} must hold at least ${MIN_KEY_LENGTH} characters`,
    )
  }
  return key
}

function tightenOrWarn(file: string, log: KeyLog, owned: boolean): void {
  if (owned) {
    try {
      chmodSync(file, 0o600)
      log.warn(`${file} was readable by others: its mode is now 0600`)
      return
    } catch {
      // Not ours to change after all (another owner, a read-only file system): say so below.
    }
  }
  log.warn(`${file} is readable by other users than the server's; restrict it if you can`)
}
