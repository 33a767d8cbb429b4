import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import { isUniqueViolation } from '../db/errors.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { ClientContext } from '../sessions/sessions.js'
import { isDeviceClient } from './clients.js'
import { generateDeviceCode } from './device-code.js'
import { formatUserCode, generateUserCode, userCodeHash } from './user-code.js'

export interface DeviceDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'issuer' | 'oauth' | 'keyEncryptionKey'>
}

/** RFC 8628 §3.2 `expires_in`: how long the user has to approve (README, "Device login"). */
export const DEVICE_CODE_TTL_SECONDS = 600
/** RFC 8628 §3.2 `interval`: the first wait between polls (its default, 5 s). */
export const POLL_INTERVAL_SECONDS = 5
/**
 * Expired rows stay this long before a later request deletes them, so a device polling just
 * after the expiry hears `expired_token` rather than `invalid_grant`.
 */
export const PRUNE_AFTER_EXPIRY_MS = DEVICE_CODE_TTL_SECONDS * 1000
const USER_AGENT_MAX = 256
/** A fresh user code that is already taken (by a live or not yet pruned row) is drawn again. */
const USER_CODE_ATTEMPTS = 5

/** The Device Authorization Response, RFC 8628 §3.2. */
export interface DeviceAuthorization {
  device_code: string
  user_code: string
  verification_uri: string
  verification_uri_complete: string
  expires_in: number
  interval: number
}

/** Where people enter the code: the verification page of the sign-in pages. */
export function verificationUri(config: Pick<Config, 'issuer'>): string {
  return `${config.issuer}/device`
}

/**
 * Starts a device login for a public client (RFC 8628 §3.1): a device code for the device, a
 * user code for the person, one `pending` row recording who asked (address and user agent, shown
 * on the verification page). Expired rows are deleted on the way, as federated login does with
 * its states (README, "Federated login"): no job runner needed.
 */
export async function startDeviceAuthorization(
  t: DeviceDeps,
  clientId: string,
  client: ClientContext,
): Promise<DeviceAuthorization> {
  if (!isDeviceClient(t.config, clientId)) {
    throw new TesseraError('invalid_client', 'This client may not start a device login')
  }
  const now = t.clock()
  await t.db
    .deleteFrom('device_authorizations')
    .where('expires_at', '<', now - PRUNE_AFTER_EXPIRY_MS)
    .execute()
  const device = generateDeviceCode()
  for (let attempt = 1; ; attempt++) {
    const userCode = generateUserCode()
    try {
      await t.db
        .insertInto('device_authorizations')
        .values({
          device_code_hash: device.hash,
          user_code_hash: userCodeHash(t.config.keyEncryptionKey, userCode),
          client_id: clientId,
          client_ip: client.ip,
          client_user_agent: client.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
          status: 'pending',
          interval_seconds: POLL_INTERVAL_SECONDS,
          last_polled_at: null,
          user_id: null,
          decided_by_session_id: null,
          decided_at: null,
          amr: null,
          created_at: now,
          expires_at: now + DEVICE_CODE_TTL_SECONDS * 1000,
        })
        .execute()
    } catch (error) {
      if (isUniqueViolation(error) && attempt < USER_CODE_ATTEMPTS) continue
      throw error
    }
    const shown = formatUserCode(userCode)
    const page = verificationUri(t.config)
    return {
      device_code: device.code,
      user_code: shown,
      verification_uri: page,
      verification_uri_complete: `${page}?user_code=${shown}`,
      expires_in: DEVICE_CODE_TTL_SECONDS,
      interval: POLL_INTERVAL_SECONDS,
    }
  }
}
