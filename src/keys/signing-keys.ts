import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import { isUniqueViolation } from '../db/errors.js'
import type { Database, SigningKeyRow } from '../db/schema.js'
import { encodePublicPaserk, encodeSecretPaserk, publicKeyId } from '../paseto/paserk.js'
import { formatPasetoTime } from '../paseto/time.js'
import { generateSigningKeyPair } from '../tokens/sign.js'
import { decryptSecret, encryptSecret, isEncryptedSecret } from './key-encryption.js'

export interface KeyDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'accessTokenTtl' | 'keyEncryptionKey'>
}

/** How long a replica may keep signing with a key it cached before it re-reads the active one. */
export const SIGNER_CACHE_MS = 10_000
/** Verifiers accept this much clock skew; a retiring key stays published past it. */
const SKEW_MARGIN_MS = 60_000

export interface PublishedKey {
  kid: string
  paserk: string
  status: 'active' | 'retiring'
  created_at: string
}

export interface KeyInfo {
  kid: string
  status: 'active' | 'retiring' | 'retired'
  created_at: string
  retire_after: string | null
  encrypted: boolean
}

function newKeyRow(deps: KeyDeps): SigningKeyRow {
  const { publicKey, secretKey } = generateSigningKeyPair()
  const publicPaserk = encodePublicPaserk(publicKey)
  const kid = publicKeyId(publicPaserk)
  const secretPaserk = encodeSecretPaserk(secretKey)
  const kek = deps.config.keyEncryptionKey
  return {
    kid,
    public_paserk: publicPaserk,
    secret_key: kek === undefined ? secretPaserk : encryptSecret(kek, kid, secretPaserk),
    status: 'active',
    created_at: deps.clock(),
    retire_after: null,
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
    const row = newKeyRow(deps)
    await deps.db.insertInto('signing_keys').values(row).execute()
    return row
  } catch (error) {
    if (!isUniqueViolation(error)) throw error
    const winner = await activeKey(deps)
    if (winner === undefined) throw error
    return winner
  }
}

/**
 * Makes a new active key and moves the current one to `retiring`. The retiring key stays
 * published until every token it may still sign has expired: one access-token TTL, plus the
 * time other replicas may keep signing with their cached copy, plus clock skew. The rotation and
 * its audit event commit together.
 */
export async function rotateSigningKey(
  deps: KeyDeps,
): Promise<{ kid: string; retired: string | null }> {
  const now = deps.clock()
  const retireAfter = now + deps.config.accessTokenTtl * 1000 + SIGNER_CACHE_MS + SKEW_MARGIN_MS
  const next = newKeyRow(deps)
  return deps.db.transaction().execute(async (tx) => {
    await retireExpiredKeys(tx, now)
    const previous = await tx
      .updateTable('signing_keys')
      .set({ status: 'retiring', retire_after: retireAfter })
      .where('status', '=', 'active')
      .returning('kid')
      .executeTakeFirst()
    await tx.insertInto('signing_keys').values(next).execute()
    const rotated = { kid: next.kid, retired: previous?.kid ?? null }
    await recordAudit(tx, deps.clock, { event: 'key_rotated', detail: rotated })
    return rotated
  })
}

function isPublished(row: Pick<SigningKeyRow, 'status' | 'retire_after'>, now: number): boolean {
  return row.status === 'active' || (row.status === 'retiring' && (row.retire_after ?? 0) > now)
}

/**
 * Moves retiring keys whose window has ended to `retired`, for good: no token they signed can be
 * valid any more, and the published set is read through the `status` index, so retired rows are
 * never scanned again however many rotations pile up (README, "Keys").
 */
async function retireExpiredKeys(db: Kysely<Database>, now: number): Promise<void> {
  await db
    .updateTable('signing_keys')
    .set({ status: 'retired' })
    .where('status', '=', 'retiring')
    .where('retire_after', '<=', now)
    .execute()
}

/**
 * The active and retiring rows. Retiring rows past their window are retired on the way (a write
 * only when there are some), so each is seen here at most once after its window ends.
 */
export async function liveKeyRows(deps: Pick<KeyDeps, 'db' | 'clock'>): Promise<SigningKeyRow[]> {
  const now = deps.clock()
  const rows = await deps.db
    .selectFrom('signing_keys')
    .selectAll()
    .where('status', 'in', ['active', 'retiring'])
    .orderBy('created_at', 'desc')
    .execute()
  if (rows.some((row) => !isPublished(row, now))) await retireExpiredKeys(deps.db, now)
  return rows.filter((row) => isPublished(row, now))
}

/** The keys verifiers must accept now: the active one and those still retiring. */
export async function publishedKeys(deps: Pick<KeyDeps, 'db' | 'clock'>): Promise<PublishedKey[]> {
  const rows = await liveKeyRows(deps)
  return rows.map((row) => ({
    kid: row.kid,
    paserk: row.public_paserk,
    status: row.status as 'active' | 'retiring',
    created_at: formatPasetoTime(row.created_at),
  }))
}

/**
 * The live keys for operators (`tessera keys list`), or with `includeRetired` every key ever made
 * (`--all`): the retired ones are only read when asked for.
 */
export async function listSigningKeys(
  deps: Pick<KeyDeps, 'db' | 'clock'>,
  options: { includeRetired?: boolean } = {},
): Promise<KeyInfo[]> {
  const now = deps.clock()
  const rows =
    options.includeRetired === true
      ? await deps.db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').execute()
      : await liveKeyRows(deps)
  return rows.map((row) => ({
    kid: row.kid,
    status: isPublished(row, now) ? (row.status as 'active' | 'retiring') : 'retired',
    created_at: formatPasetoTime(row.created_at),
    retire_after: row.retire_after === null ? null : formatPasetoTime(row.retire_after),
    encrypted: isEncryptedSecret(row.secret_key),
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
