import { timingSafeEqual } from 'node:crypto'
import { recordAudit } from '../audit/audit.js'
import { TesseraError } from '../errors.js'
import { addressBucket } from '../rate-limit/address-bucket.js'
import type { RateLimits } from '../rate-limit/limits.js'
import type { ClientContext } from '../sessions/sessions.js'
import {
  type ClientDeps,
  findLiveClient,
  hashClientSecret,
  looksLikeClientId,
  type Permission,
  type ServiceClient,
} from './clients.js'

export interface ClientAuthDeps extends ClientDeps {
  limits: Pick<RateLimits, 'clientAuthPerClient' | 'clientAuthPerIp'>
}

/** A client id and secret as presented (HTTP Basic or form fields; src/http/client-auth.ts). */
export interface ClientCredentials {
  clientId: string
  secret: string
}

/** Compared with when the client id is unknown, so both cases do the same work. */
const NO_SECRET_HASH = hashClientSecret('no such client')
/** `last_used_at` is written at most this often per client, not on every request. */
const LAST_USED_RESOLUTION_MS = 60_000

/**
 * Checks a client's credentials: the client exists, is not revoked, and the SHA-256 of the
 * presented secret equals the stored one (constant-time). Every failure, an unknown id, a revoked
 * client or a wrong secret, answers the same 401 `invalid_client_credentials`.
 *
 * Failures are counted per address and per client id after the check, never before it: the
 * limits bound what failing costs (an audit row each, the answers), and a right secret is never
 * refused by them, so nobody can lock a client out by failing in its name. With 256-bit secrets
 * there is nothing for a budget to protect against guessing (README, "Service clients").
 */
export async function authenticateClient(
  deps: ClientAuthDeps,
  credentials: ClientCredentials,
  caller: ClientContext,
): Promise<ServiceClient> {
  const found = await findLiveClient(deps, credentials.clientId)
  const matches = timingSafeEqual(
    hashClientSecret(credentials.secret),
    found?.secretHash ?? NO_SECRET_HASH,
  )
  if (found !== undefined && matches) {
    const now = deps.clock()
    if (found.lastUsedAt === null || now - found.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
      await deps.db
        .updateTable('service_clients')
        .set({ last_used_at: now })
        .where('id', '=', found.id)
        .execute()
    }
    const { secretHash: _, ...client } = found
    return client
  }
  const knownShape = looksLikeClientId(credentials.clientId)
  await deps.limits.clientAuthPerIp.consume(addressBucket(caller.ip))
  if (knownShape) await deps.limits.clientAuthPerClient.consume(credentials.clientId)
  await recordAudit(deps.db, deps.clock, {
    event: 'client_authentication_failed',
    ip: caller.ip,
    detail: {
      client_id: knownShape ? credentials.clientId : null,
      reason: found === undefined ? 'unknown_or_revoked' : 'wrong_secret',
    },
  })
  throw invalidClientCredentials()
}

export function invalidClientCredentials(): TesseraError {
  return new TesseraError(
    'invalid_client_credentials',
    'The client id or secret is wrong, or the client was revoked',
  )
}

/** 403 `permission_required` unless the client was created with `permission`. */
export function requirePermission(client: ServiceClient, permission: Permission): void {
  if (!client.permissions.includes(permission)) {
    throw new TesseraError(
      'permission_required',
      `This client lacks the "${permission}" permission (tessera client create --permission)`,
    )
  }
}
