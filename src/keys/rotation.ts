/**
 * The life of a signing key (README, "Keys"): next → active → retiring → retired, or revoked.
 *
 * 1. `tessera keys rotate` (`publishNextSigningKey`) publishes a `next` key and signs nothing
 *    with it. It becomes active at `activates_at`, KEY_ROTATION_DELAY later: by then every
 *    verifier has fetched it (the keys' max-age plus the verifier's refetch cooldown, plus a
 *    margin), so no verifier meets a token signed with a key it does not know.
 * 2. Nobody has to come back for it: whichever process signs next after `activates_at` promotes
 *    the key (`promoteDueKey`, called by the key ring). The promotion claims the `next` row with
 *    a conditional write, so of replicas racing there exactly one promotes; the partial unique
 *    indexes allow one `active` and one `next` key at any time.
 * 3. The key that stops signing becomes `retiring` and stays published for `retireWindowMs` (one
 *    access-token TTL plus the signer cache plus clock skew), then `retired`.
 * 4. `keys rotate --now` (`rotateSigningKey`) is the emergency path: a fresh key signs at once.
 *    Verifiers that cached the keys less than their cooldown ago refuse its tokens until they
 *    refetch. A pending `next` key is withdrawn: it predates the emergency.
 * 5. `keys revoke` (`revokeSigningKey`) withdraws a key of any status at once: it leaves
 *    `GET /v1/keys`, Tessera stops accepting tokens it signed within a second (the key ring's
 *    refresh), and if it was the active key a fresh one replaces it as with `--now`.
 * Every change and its audit event commit together.
 */
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Config } from '../config/index.js'
import { isUniqueViolation } from '../db/errors.js'
import type { Database, SigningKeyRow, SigningKeyStatus } from '../db/schema.js'
import { formatPasetoTime } from '../paseto/time.js'
import { recordRevocation } from '../revocations/log.js'
import { isEncryptedSecret } from './key-encryption.js'
import {
  isPublished,
  type KeyDeps,
  liveKeyRows,
  newKeyRow,
  retireExpiredKeys,
  retireWindowMs,
} from './signing-keys.js'

export interface RotationDeps extends KeyDeps {
  config: KeyDeps['config'] & Pick<Config, 'keyRotationDelay'>
}

export type PublishOutcome =
  | { outcome: 'published'; kid: string; activatesAt: number }
  /** A rotation is already pending: nothing was changed. */
  | { outcome: 'pending'; kid: string; activatesAt: number }

/** Rule 1: publishes a `next` key that becomes active KEY_ROTATION_DELAY seconds from now. */
export async function publishNextSigningKey(deps: RotationDeps): Promise<PublishOutcome> {
  const pending = await nextKey(deps.db)
  if (pending !== undefined) return pendingOutcome(pending)
  const now = deps.clock()
  // On a whole second, so the time `keys rotate` and `keys list` print is exact.
  const activatesAt = Math.ceil((now + deps.config.keyRotationDelay * 1000) / 1000) * 1000
  const next = newKeyRow(deps, 'next', activatesAt)
  try {
    return await deps.db.transaction().execute(async (tx) => {
      await retireExpiredKeys(tx, now)
      await tx.insertInto('signing_keys').values(next).execute()
      await recordAudit(tx, deps.clock, {
        event: 'key_published',
        detail: { kid: next.kid, activates_at: formatPasetoTime(activatesAt) },
      })
      return { outcome: 'published', kid: next.kid, activatesAt } as const
    })
  } catch (error) {
    // Another operator's rotation got in first (the one-next-key index).
    const winner = isUniqueViolation(error) ? await nextKey(deps.db) : undefined
    if (winner === undefined) throw error
    return pendingOutcome(winner)
  }
}

function nextKey(db: Kysely<Database>): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('signing_keys').selectAll().where('status', '=', 'next').executeTakeFirst()
}

function pendingOutcome(row: SigningKeyRow): PublishOutcome {
  return { outcome: 'pending', kid: row.kid, activatesAt: row.activates_at ?? row.created_at }
}

/**
 * Rules 2 and 3: makes the `next` key active if its time has come, the active one `retiring`.
 * Returns the kid it promoted, or undefined when there was nothing due (or another process
 * promoted it first). Called by the key ring before it signs.
 */
export async function promoteDueKey(deps: KeyDeps): Promise<string | undefined> {
  const now = deps.clock()
  return deps.db.transaction().execute(async (tx) => {
    // The claim, and the transaction's first statement: a write, so racers queue on the row lock
    // (PostgreSQL) or the file's write lock (SQLite), and each one after the first finds the row
    // no longer `next`. `activates_at` becomes the moment it really became active.
    const due = await tx
      .updateTable('signing_keys')
      .set({ activates_at: now })
      .where('status', '=', 'next')
      .where('activates_at', '<=', now)
      .returning('kid')
      .executeTakeFirst()
    if (due === undefined) return undefined
    const retired = await retireActiveKey(tx, deps, now)
    await tx
      .updateTable('signing_keys')
      .set({ status: 'active' })
      .where('kid', '=', due.kid)
      .execute()
    await recordAudit(tx, deps.clock, { event: 'key_rotated', detail: { kid: due.kid, retired } })
    return due.kid
  })
}

/** The active key becomes `retiring` (rule 3); its kid, or null when there was none. */
async function retireActiveKey(
  tx: Kysely<Database>,
  deps: KeyDeps,
  now: number,
): Promise<string | null> {
  const previous = await tx
    .updateTable('signing_keys')
    .set({ status: 'retiring', retire_after: now + retireWindowMs(deps) })
    .where('status', '=', 'active')
    .returning('kid')
    .executeTakeFirst()
  return previous?.kid ?? null
}

/**
 * A pending `next` key is withdrawn (rule 4): it never signed, so it is simply retired, and it
 * leaves `GET /v1/keys`. Its kid, or null when there was none.
 */
async function withdrawNextKey(tx: Kysely<Database>, now: number): Promise<string | null> {
  const withdrawn = await tx
    .updateTable('signing_keys')
    .set({ status: 'retired', activates_at: null, retire_after: now })
    .where('status', '=', 'next')
    .returning('kid')
    .executeTakeFirst()
  return withdrawn?.kid ?? null
}

/** A fresh key, active at once, in `tx`; a pending next key is withdrawn (rule 4). */
async function activateFreshKey(
  tx: Kysely<Database>,
  deps: KeyDeps,
  now: number,
): Promise<{ kid: string; withdrawn: string | null }> {
  const withdrawn = await withdrawNextKey(tx, now)
  const fresh = newKeyRow(deps, 'active', now)
  await tx.insertInto('signing_keys').values(fresh).execute()
  return { kid: fresh.kid, withdrawn }
}

/**
 * Rule 4, `keys rotate --now`: a new key signs at once (within a second on every replica, the
 * key ring's refresh) and the previous one becomes `retiring`.
 */
export async function rotateSigningKey(
  deps: KeyDeps,
): Promise<{ kid: string; retired: string | null; withdrawn: string | null }> {
  const now = deps.clock()
  return deps.db.transaction().execute(async (tx) => {
    await retireExpiredKeys(tx, now)
    const retired = await retireActiveKey(tx, deps, now)
    const { kid, withdrawn } = await activateFreshKey(tx, deps, now)
    await recordAudit(tx, deps.clock, {
      event: 'key_rotated',
      detail: { kid, retired, ...(withdrawn === null ? {} : { withdrawn }) },
    })
    return { kid, retired, withdrawn }
  })
}

export type RevokeOutcome =
  | {
      outcome: 'revoked'
      kid: string
      /** The status the key had. */
      was: SigningKeyStatus
      /** The fresh key made active when the revoked key was the active one. */
      activated: string | null
    }
  | { outcome: 'already_revoked'; kid: string }
  | { outcome: 'unknown'; kid: string }

/** Rule 5: withdraws the key `kid`, whatever its status, at once. */
export async function revokeSigningKey(deps: KeyDeps, kid: string): Promise<RevokeOutcome> {
  const now = deps.clock()
  return deps.db.transaction().execute(async (tx) => {
    // Locks the row first (a write), so a promotion or another revocation of it waits for us.
    const row = await tx
      .updateTable('signing_keys')
      .set({ revoked_at: now })
      .where('kid', '=', kid)
      .where('status', '!=', 'revoked')
      .returning('status')
      .executeTakeFirst()
    if (row === undefined) {
      const known = await tx
        .selectFrom('signing_keys')
        .select('kid')
        .where('kid', '=', kid)
        .executeTakeFirst()
      return { outcome: known === undefined ? 'unknown' : 'already_revoked', kid } as const
    }
    await tx.updateTable('signing_keys').set({ status: 'revoked' }).where('kid', '=', kid).execute()
    const fresh = row.status === 'active' ? await activateFreshKey(tx, deps, now) : undefined
    const activated = fresh?.kid ?? null
    const withdrawn = fresh?.withdrawn ?? null
    // Announced on the revocation feed in this transaction: verifiers that cached the key stop
    // accepting its tokens within about a second (docs/revocation.md).
    await recordRevocation(tx, deps.clock, { kind: 'key', kid })
    await recordAudit(tx, deps.clock, {
      event: 'key_revoked',
      detail: { kid, was: row.status, activated, ...(withdrawn === null ? {} : { withdrawn }) },
    })
    return { outcome: 'revoked', kid, was: row.status, activated } as const
  })
}

export interface KeyInfo {
  kid: string
  status: SigningKeyStatus
  created_at: string
  /** A next key: when it becomes active. Any other: when it became active (null: never). */
  activates_at: string | null
  retire_after: string | null
  revoked_at: string | null
  encrypted: boolean
}

/**
 * The keys for operators (`tessera keys list`): the next, active and retiring ones, or with
 * `all` every key ever made (`--all`: retired and revoked ones too, read only when asked for).
 * A next key that is due is promoted first, so the list shows what signs now.
 */
export async function listSigningKeys(
  deps: KeyDeps,
  options: { all?: boolean } = {},
): Promise<KeyInfo[]> {
  await promoteDueKey(deps)
  const now = deps.clock()
  const rows =
    options.all === true
      ? await deps.db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').execute()
      : await liveKeyRows(deps)
  const time = (ms: number | null) => (ms === null ? null : formatPasetoTime(ms))
  return rows.map((row) => ({
    kid: row.kid,
    // A retiring row past its window that no read has retired yet is retired all the same.
    status: row.status === 'retiring' && !isPublished(row, now) ? 'retired' : row.status,
    created_at: formatPasetoTime(row.created_at),
    activates_at: time(row.activates_at),
    retire_after: time(row.retire_after),
    revoked_at: time(row.revoked_at),
    encrypted: isEncryptedSecret(row.secret_key),
  }))
}
