import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import { preparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'

/**
 * Device cookies (README, "Passwords and login"): a client that has logged in to an account with
 * its password before gets a cookie naming that fact, and its later login attempts to that account
 * are counted against a budget of its own, apart from the account-wide budget every other client
 * shares. Whoever guesses passwords from elsewhere can exhaust only the latter.
 */
export const DEVICE_COOKIE = 'tessera_device'
/** Recognisable prefix so secret scanners and people can tell what leaked. */
const DEVICE_TOKEN_PREFIX = 'tessera_dev_'
const DEVICE_TOKEN_PATTERN = /^tessera_dev_[A-Za-z0-9_-]{43}$/
/** How long a device stays known after its last password login. */
export const DEVICE_TTL_SECONDS = 365 * 24 * 3600
/** Devices kept per account; older ones are forgotten (they fall back to the shared budget). */
const DEVICES_PER_USER = 20

/** SHA-256: the token has 256 bits of entropy; a lookup by hash compares no secret byte by byte. */
function hashDeviceToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

interface DeviceDeps {
  db: Kysely<Database>
  clock: Clock
}

/**
 * The device's id (its hash, the key of its rate-limit counter) when `token` is a live device
 * cookie issued to the account `normalizedEmail`; undefined for garbage, unknown, expired tokens
 * and tokens of another account, which get no budget of their own.
 */
export async function trustedDevice(
  deps: DeviceDeps,
  token: string | undefined,
  normalizedEmail: string,
): Promise<string | undefined> {
  if (token === undefined || !DEVICE_TOKEN_PATTERN.test(token)) return undefined
  const row = await liveDevice.first(deps.db, {
    hash: hashDeviceToken(token),
    email: normalizedEmail,
    now: deps.clock(),
  })
  return row?.token_hash
}

const liveDevice = preparedQuery((db, p: { hash: string; email: string; now: number }) =>
  db
    .selectFrom('login_devices')
    .innerJoin('users', 'users.id', 'login_devices.user_id')
    .select('login_devices.token_hash')
    .where('login_devices.token_hash', '=', p.hash)
    .where('users.email_normalized', '=', p.email)
    .where('login_devices.expires_at', '>', p.now),
)

/**
 * A known device logged in again: it stays known for DEVICE_TTL_SECONDS from now (the cookie is
 * set again with the same lifetime), so a device in daily use never falls back to the shared
 * budget.
 */
export async function renewDevice(deps: DeviceDeps, deviceId: string): Promise<void> {
  await renewedDevice.execute(deps.db, {
    hash: deviceId,
    expiresAt: deps.clock() + DEVICE_TTL_SECONDS * 1000,
  })
}

const renewedDevice = preparedQuery((db, p: { hash: string; expiresAt: number }) =>
  db.updateTable('login_devices').set({ expires_at: p.expiresAt }).where('token_hash', '=', p.hash),
)

/**
 * Forgets every device of a user, in the transaction of a password change or a disable: a device
 * earned its budget by knowing the old password, and must not keep guessing the new one on a
 * budget of its own.
 */
export async function forgetDevices(db: Kysely<Database>, userId: string): Promise<void> {
  await db.deleteFrom('login_devices').where('user_id', '=', userId).execute()
}

/**
 * Remembers a new device for `userId` and returns its cookie value (never stored). Inside a
 * caller's transaction (the login's session, `signInWithPassword`) it is part of that one.
 */
export async function issueDevice(deps: DeviceDeps, userId: string): Promise<string> {
  const token = DEVICE_TOKEN_PREFIX + randomBytes(32).toString('base64url')
  const now = deps.clock()
  await inTransaction(deps.db, async (tx) => {
    await insertDevice.execute(tx, {
      hash: hashDeviceToken(token),
      userId,
      now,
      expiresAt: now + DEVICE_TTL_SECONDS * 1000,
    })
    await pruneDevices.execute(tx, { userId, now })
  })
  return token
}

const insertDevice = preparedQuery(
  (db, p: { hash: string; userId: string; now: number; expiresAt: number }) =>
    db.insertInto('login_devices').values({
      token_hash: p.hash,
      user_id: p.userId,
      created_at: p.now,
      expires_at: p.expiresAt,
    }),
)

/** Bounded per account: a client that never keeps its cookie would otherwise add a row a login. */
const pruneDevices = preparedQuery((db, p: { userId: string; now: number }) =>
  db
    .deleteFrom('login_devices')
    .where('user_id', '=', p.userId)
    .where((eb) =>
      eb.or([
        eb('expires_at', '<=', p.now),
        eb(
          'token_hash',
          'not in',
          eb
            .selectFrom('login_devices')
            .select('token_hash')
            .where('user_id', '=', p.userId)
            .orderBy('created_at', 'desc')
            .orderBy('token_hash')
            .limit(DEVICES_PER_USER),
        ),
      ]),
    ),
)
