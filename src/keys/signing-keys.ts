import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import { isUniqueViolation } from '../db/errors.js'
import type { Database, SigningKeyRow } from '../db/schema.js'
import { encodePublicPaserk, encodeSecretPaserk, publicKeyId } from '../paseto/paserk.js'
import { formatPasetoTime } from '../paseto/time.js'
import { longestTokenLifetime } from '../tokens/lifetime.js'
import { generateSigningKeyPair } from '../tokens/sign.js'
import { decryptSecret, encryptSecret, isEncryptedSecret } from './key-encryption.js'

export interface KeyDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'accessTokenTtl' | 'keyEncryptionKey'> &
    Partial<Pick<Config, 'jobTokenMaxTtl'>>
}

/**
 * The longest a process may keep signing with a key after another process stopped it (a
 * rotation, a promotion): its key ring re-reads the keys every second, and refuses to sign from a
 * view older than this when the database cannot be read (src/keys/key-ring.ts).
 */
export const SIGNER_CACHE_MS = 10_000
/** Verifiers accept this much clock skew; a retiring key stays published past it. */
export const SKEW_MARGIN_MS = 60_000

/**
 * How long a key that stops signing stays published: until no token it may still have signed can
 * be valid. The longest access-token lifetime (a job token's, when those are longer), plus the
 * time other replicas may keep signing with their copy (SIGNER_CACHE_MS), plus clock skew
 * (README, "Keys").
 */
export function retireWindowMs(deps: Pick<KeyDeps, 'config'>): number {
  return longestTokenLifetime(deps.config) * 1000 + SIGNER_CACHE_MS + SKEW_MARGIN_MS
}

/** The statuses `GET /v1/keys` publishes: verifiers accept a token signed by any of them. */
export type PublishedStatus = 'next' | 'active' | 'retiring'
const PUBLISHED_STATUSES: PublishedStatus[] = ['next', 'active', 'retiring']

export interface PublishedKey {
  kid: string
  paserk: string
  status: PublishedStatus
  created_at: string
}

/** A fresh Ed25519 key as a row, its secret encrypted when a key-encryption key is configured. */
export function newKeyRow(
  deps: KeyDeps,
  status: 'next' | 'active',
  activatesAt: number,
): SigningKeyRow {
  const { publicKey, secretKey } = generateSigningKeyPair()
  const publicPaserk = encodePublicPaserk(publicKey)
  const kid = publicKeyId(publicPaserk)
  const secretPaserk = encodeSecretPaserk(secretKey)
  const kek = deps.config.keyEncryptionKey
  return {
    kid,
    public_paserk: publicPaserk,
    secret_key: kek === undefined ? secretPaserk : encryptSecret(kek, kid, secretPaserk),
    status,
    created_at: deps.clock(),
    activates_at: activatesAt,
    retire_after: null,
    revoked_at: null,
  }
}

/** The secret PASERK of a stored key, decrypted when it was stored encrypted. */
export function readSecretPaserk(deps: Pick<KeyDeps, 'config'>, row: SigningKeyRow): string {
  if (!isEncryptedSecret(row.secret_key)) return row.secret_key
  const kek = deps.config.keyEncryptionKey
  if (kek === undefined) {
    throw new Error(`Signing key ${row.kid} is encrypted at rest: set KEY_ENCRYPTION_KEY`)
  }
  return decryptSecret(kek, row.kid, row.secret_key)
}

export async function activeKey(deps: Pick<KeyDeps, 'db'>): Promise<SigningKeyRow | undefined> {
  return deps.db
    .selectFrom('signing_keys')
    .selectAll()
    .where('status', '=', 'active')
    .executeTakeFirst()
}

/**
 * Makes sure one active key exists. Replicas starting together on an empty database race here;
 * the partial unique index lets exactly one insert win and the others read the winner.
 */
export async function ensureActiveKey(deps: KeyDeps): Promise<SigningKeyRow> {
  const existing = await activeKey(deps)
  if (existing !== undefined) return existing
  try {
    const row = newKeyRow(deps, 'active', deps.clock())
    await deps.db.insertInto('signing_keys').values(row).execute()
    return row
  } catch (error) {
    if (!isUniqueViolation(error)) throw error
    const winner = await activeKey(deps)
    if (winner === undefined) throw error
    return winner
  }
}

export function isPublished(
  row: Pick<SigningKeyRow, 'status' | 'retire_after'>,
  now: number,
): boolean {
  if (row.status === 'next' || row.status === 'active') return true
  return row.status === 'retiring' && (row.retire_after ?? 0) > now
}

/**
 * Moves retiring keys whose window has ended to `retired`, for good: no token they signed can be
 * valid any more, and the published set is read through the `status` index, so retired rows are
 * never scanned again however many rotations pile up (README, "Keys").
 */
export async function retireExpiredKeys(db: Kysely<Database>, now: number): Promise<void> {
  await db
    .updateTable('signing_keys')
    .set({ status: 'retired' })
    .where('status', '=', 'retiring')
    .where('retire_after', '<=', now)
    .execute()
}

/**
 * The next, active and retiring rows, newest first. Retiring rows past their window are retired on
 * the way (a write only when there are some), so each is seen here at most once after its window
 * ends. Revoked and retired rows are never read here.
 */
export async function liveKeyRows(deps: Pick<KeyDeps, 'db' | 'clock'>): Promise<SigningKeyRow[]> {
  const now = deps.clock()
  const rows = await deps.db
    .selectFrom('signing_keys')
    .selectAll()
    .where('status', 'in', PUBLISHED_STATUSES)
    .orderBy('created_at', 'desc')
    .execute()
  if (rows.some((row) => !isPublished(row, now))) await retireExpiredKeys(deps.db, now)
  return rows.filter((row) => isPublished(row, now))
}

/**
 * The keys verifiers must accept now: the next key (published before it signs, so verifiers have
 * it when it does), the active one and those still retiring.
 */
export async function publishedKeys(deps: Pick<KeyDeps, 'db' | 'clock'>): Promise<PublishedKey[]> {
  const rows = await liveKeyRows(deps)
  return rows.map((row) => ({
    kid: row.kid,
    paserk: row.public_paserk,
    status: row.status as PublishedStatus,
    created_at: formatPasetoTime(row.created_at),
  }))
}

/**
 * Encrypts, in one transaction, every key still stored in clear (a database from before keys were
 * encrypted by default, README "Keys"). Returns how many there were.
 */
export async function encryptClearKeys(deps: KeyDeps): Promise<number> {
  const kek = deps.config.keyEncryptionKey
  if (kek === undefined) return 0
  return deps.db.transaction().execute(async (tx) => {
    // Filtered in SQL: a database with years of retired keys sends none of them here.
    const rows = await tx
      .selectFrom('signing_keys')
      .select(['kid', 'secret_key'])
      .where('secret_key', 'not like', 'enc.v1.%')
      .execute()
    const clear = rows.filter((row) => !isEncryptedSecret(row.secret_key))
    for (const row of clear) {
      await tx
        .updateTable('signing_keys')
        .set({ secret_key: encryptSecret(kek, row.kid, row.secret_key) })
        .where('kid', '=', row.kid)
        .where('secret_key', '=', row.secret_key)
        .execute()
    }
    return clear.length
  })
}
