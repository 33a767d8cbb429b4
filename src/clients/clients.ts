import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Database } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { recordRevocation } from '../revocations/log.js'

/**
 * Service clients (README, "Service clients"): per-service credentials, made on the server host
 * with `tessera client create`, each limited to the operations it names and revoked alone.
 */

/** What a client may do, besides the `client_credentials` grant every client has. */
export const PERMISSIONS = ['introspect', 'register-service', 'read-users'] as const
export type Permission = (typeof PERMISSIONS)[number]

/** Recognisable prefix so secret scanners and people can tell what leaked. */
export const CLIENT_SECRET_PREFIX = 'tsr_cs_'
const SECRET_PATTERN = /^tsr_cs_[A-Za-z0-9_-]{43}$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
export const CLIENT_NAME_MAX = 100

export interface ClientDeps {
  db: Kysely<Database>
  clock: Clock
}

export interface ServiceClient {
  id: string
  name: string
  permissions: Permission[]
  createdAt: number
  lastUsedAt: number | null
  revokedAt: number | null
}

export interface CreatedClient extends ServiceClient {
  /** Shown once; only its SHA-256 is stored. */
  secret: string
}

/**
 * SHA-256 is enough: the secret has 256 bits of entropy, so there is nothing to brute-force
 * (as for refresh tokens, src/sessions/refresh-token.ts).
 */
export function hashClientSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest()
}

export function looksLikeClientId(value: string): boolean {
  return UUID.test(value)
}

export function looksLikeClientSecret(value: string): boolean {
  return SECRET_PATTERN.test(value)
}

/** Parses `introspect,read-users`; an unknown or repeated name is a `validation_failed`. */
export function parsePermissions(list: string): Permission[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  const unknown = names.filter((n) => !(PERMISSIONS as readonly string[]).includes(n))
  if (unknown.length > 0) {
    throw new TesseraError(
      'validation_failed',
      `Unknown permission ${unknown.join(', ')} (known: ${PERMISSIONS.join(', ')})`,
    )
  }
  return [...new Set(names as Permission[])].sort()
}

/** Creates a client with a fresh secret, and its audit event, in one transaction. */
export async function createClient(
  deps: ClientDeps,
  name: string,
  permissions: readonly Permission[],
): Promise<CreatedClient> {
  const trimmed = name.trim()
  // The name is shown in lists and audit events: printable, bounded.
  if (trimmed === '' || trimmed.length > CLIENT_NAME_MAX || /[\p{Cc}\p{Cf}]/u.test(trimmed)) {
    throw new TesseraError(
      'validation_failed',
      `The client name must be 1 to ${CLIENT_NAME_MAX} printable characters`,
    )
  }
  const id = randomUUID()
  const secret = CLIENT_SECRET_PREFIX + randomBytes(32).toString('base64url')
  const now = deps.clock()
  const sorted = [...permissions].sort()
  await inTransaction(deps.db, async (tx) => {
    await tx
      .insertInto('service_clients')
      .values({
        id,
        name: trimmed,
        secret_hash: hashClientSecret(secret).toString('hex'),
        permissions: sorted.join(','),
        created_at: now,
        last_used_at: null,
        revoked_at: null,
      })
      .execute()
    await recordAudit(tx, deps.clock, {
      event: 'client_created',
      detail: { client_id: id, name: trimmed, permissions: sorted.join(',') },
    })
  })
  return {
    id,
    name: trimmed,
    permissions: sorted,
    createdAt: now,
    lastUsedAt: null,
    revokedAt: null,
    secret,
  }
}

export async function listClients(deps: Pick<ClientDeps, 'db'>): Promise<ServiceClient[]> {
  const rows = await deps.db
    .selectFrom('service_clients')
    .selectAll()
    .orderBy('created_at')
    .orderBy('id')
    .execute()
  return rows.map(toClient)
}

export type RevokeOutcome = 'revoked' | 'already_revoked' | 'unknown'

/**
 * Revokes one client: its secret stops working at once, and a session-kind entry of the
 * revocation log under the client's id (the `sid` of every token it obtained) ends those tokens
 * at `/v1/authz` and at every verifier following the feed. A session entry rather than a user
 * entry: it ends every token of that `sid` whatever its `iat`, so a token minted in the same
 * second as the revocation is ended too, and a client is never re-enabled (docs/revocation.md).
 * Other clients are untouched.
 */
export async function revokeClient(deps: ClientDeps, id: string): Promise<RevokeOutcome> {
  if (!looksLikeClientId(id)) return 'unknown'
  return inTransaction(deps.db, async (tx) => {
    const now = deps.clock()
    const updated = await tx
      .updateTable('service_clients')
      .set({ revoked_at: now })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .returning('name')
      .executeTakeFirst()
    if (updated === undefined) {
      const exists = await tx
        .selectFrom('service_clients')
        .select('id')
        .where('id', '=', id)
        .executeTakeFirst()
      return exists === undefined ? 'unknown' : 'already_revoked'
    }
    await recordRevocation(tx, deps.clock, { kind: 'session', sessionId: id })
    await recordAudit(tx, deps.clock, {
      event: 'client_revoked',
      detail: { client_id: id, name: updated.name },
    })
    return 'revoked'
  })
}

/** A client that exists and is not revoked, or undefined. */
export async function findLiveClient(
  deps: Pick<ClientDeps, 'db'>,
  id: string,
): Promise<(ServiceClient & { secretHash: Buffer }) | undefined> {
  if (!looksLikeClientId(id)) return undefined
  const row = await deps.db
    .selectFrom('service_clients')
    .selectAll()
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst()
  return row === undefined
    ? undefined
    : { ...toClient(row), secretHash: Buffer.from(row.secret_hash, 'hex') }
}

function toClient(row: {
  id: string
  name: string
  permissions: string
  created_at: number | string
  last_used_at: number | string | null
  revoked_at: number | string | null
}): ServiceClient {
  const time = (t: number | string | null) => (t === null ? null : Number(t))
  return {
    id: row.id,
    name: row.name,
    permissions: row.permissions === '' ? [] : (row.permissions.split(',') as Permission[]),
    createdAt: Number(row.created_at),
    lastUsedAt: time(row.last_used_at),
    revokedAt: time(row.revoked_at),
  }
}
