import { sql } from 'kysely'
import { getUser } from '../accounts/accounts.js'
import type { Config } from '../config/index.js'
import { TesseraError } from '../errors.js'
import { parseStoredAmr } from '../sessions/amr.js'
import { type OpenSessionDeps, openSession } from '../sessions/open-session.js'
import type { ClientContext } from '../sessions/sessions.js'
import type { AccessGrant } from '../tokens/grant.js'
import type { TokenPair } from '../tokens/token-pair.js'
import { isDeviceClient } from './clients.js'
import { deviceCodeHash, looksLikeDeviceCode } from './device-code.js'

export type RedeemDeps = OpenSessionDeps & { config: Pick<Config, 'oauth'> }

/** RFC 8628 §3.4. */
export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code'

/** RFC 8628 §3.5: each `slow_down` makes the device wait this much longer, for good. */
export const SLOW_DOWN_STEP_SECONDS = 5

const invalidGrant = () =>
  new TesseraError('invalid_grant', 'The device code is unknown, already used or not yours')

/**
 * One poll of the token endpoint with a device code (RFC 8628 §3.4, §3.5), in this order:
 *
 * 1. A code that is unknown, already redeemed, or issued to another client: `invalid_grant`
 *    (the three look alike, so a poll tells nobody about someone else's code).
 * 2. Past its expiry: `expired_token`, whatever happened to it.
 * 3. Denied by the user: `access_denied`.
 * 4. Approved: the token pair. The session opens in one transaction that also claims the code
 *    with a conditional `UPDATE ... WHERE status = 'approved'` (openSession's `claim`), so of N
 *    polls on any replicas exactly one gets a pair; the others roll back and answer
 *    `invalid_grant`, as does every poll after.
 * 5. Pending: a conditional `UPDATE` records the poll if it came at least the code's interval
 *    after the previous one (`authorization_pending`); otherwise the poll is recorded, the
 *    interval grows by 5 s for good and the answer is `slow_down`. The first statement both
 *    checks and records, so of concurrent polls only one passes as slow enough. An approved code
 *    is never held back by this (`slow_down` is a variant of "pending", §3.5).
 */
export async function redeemDeviceCode(
  t: RedeemDeps,
  input: { clientId: string; deviceCode: string },
  client: ClientContext,
  grant?: AccessGrant,
): Promise<TokenPair> {
  if (!isDeviceClient(t.config, input.clientId)) {
    throw new TesseraError('invalid_client', 'This client may not use the device grant')
  }
  const now = t.clock()
  if (!looksLikeDeviceCode(input.deviceCode)) throw invalidGrant()
  const hash = deviceCodeHash(input.deviceCode)
  const row = await t.db
    .selectFrom('device_authorizations')
    .select(['client_id', 'status', 'expires_at', 'user_id', 'amr'])
    .where('device_code_hash', '=', hash)
    .executeTakeFirst()
  if (row === undefined || row.client_id !== input.clientId || row.status === 'redeemed') {
    throw invalidGrant()
  }
  if (now >= row.expires_at) {
    throw new TesseraError('expired_token', 'The device code expired; start the login again')
  }
  if (row.status === 'denied') {
    throw new TesseraError('access_denied', 'The user denied this device login')
  }
  if (row.status === 'approved') {
    if (row.user_id === null) throw invalidGrant()
    const user = await getUser(t.db, row.user_id)
    // Disabled after approving: the device gets no session (startSession would refuse it too).
    if (user.disabled !== 0) throw new TesseraError('access_denied', 'This account is disabled')
    try {
      return await openSession(t, user, client, {
        method: 'device',
        // The approving session's methods (README, "Second factors"); none for older rows.
        amr: parseStoredAmr(row.amr),
        claim: async (tx) => {
          const claimed = await tx
            .updateTable('device_authorizations')
            .set({ status: 'redeemed', last_polled_at: now })
            .where('device_code_hash', '=', hash)
            .where('status', '=', 'approved')
            .where('expires_at', '>', now)
            .executeTakeFirst()
          if (claimed.numUpdatedRows === 0n) throw invalidGrant()
        },
        grant,
      })
    } catch (error) {
      // Disabled between the read above and the session's user lock: the same answer.
      if (error instanceof TesseraError && error.code === 'account_disabled') {
        throw new TesseraError('access_denied', 'This account is disabled')
      }
      throw error
    }
  }
  const paced = await t.db
    .updateTable('device_authorizations')
    .set({ last_polled_at: now })
    .where('device_code_hash', '=', hash)
    .where('status', '=', 'pending')
    .where((eb) =>
      eb.or([
        eb('last_polled_at', 'is', null),
        // Written so that `now` meets a bigint column (a bare parameter minus an integer
        // expression would be typed integer by PostgreSQL, too small for epoch milliseconds).
        eb(sql<number>`last_polled_at + interval_seconds * 1000`, '<=', now),
      ]),
    )
    .executeTakeFirst()
  if (paced.numUpdatedRows === 0n) {
    const slowed = await t.db
      .updateTable('device_authorizations')
      .set({
        last_polled_at: now,
        interval_seconds: sql<number>`interval_seconds + ${SLOW_DOWN_STEP_SECONDS}`,
      })
      .where('device_code_hash', '=', hash)
      .where('status', '=', 'pending')
      .executeTakeFirst()
    if (slowed.numUpdatedRows > 0n) {
      throw new TesseraError(
        'slow_down',
        `Polling too fast: wait ${SLOW_DOWN_STEP_SECONDS} more seconds between polls from now on`,
      )
    }
  }
  throw new TesseraError('authorization_pending', 'The user has not approved this device login yet')
}
