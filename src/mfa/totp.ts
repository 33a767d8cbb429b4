import type { Kysely } from 'kysely'
import { Secret, TOTP } from 'otpauth'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { isEncryptedSecret, seal, unseal } from '../keys/key-encryption.js'
import type { RateLimits } from '../rate-limit/limits.js'
import type { ClientContext } from '../sessions/sessions.js'
import { issueRecoveryCodes } from './recovery-codes.js'

/**
 * TOTP (RFC 6238) as every authenticator app reads it: SHA-1, six digits, 30-second steps. A code
 * is accepted for the current step and one step either side (clocks drift; a code typed at the end
 * of its step arrives in the next), and never for a step at or before the last one accepted, so a
 * code seen over a shoulder or in a log cannot be replayed (README, "Second factors").
 */
const PERIOD = 30
const DIGITS = 6
const WINDOW = 1
/** 160 bits, RFC 4226 §4's recommended secret length. */
const SECRET_BYTES = 20
const CODE_PATTERN = /^\d{6}$/

export interface TotpDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'mail' | 'keyEncryptionKey'>
  limits: Pick<RateLimits, 'mfaPerUser'>
}

/** openapi.yaml, `TotpEnrolment`: what the user's authenticator app needs, shown once. */
export interface TotpEnrolment {
  secret: string
  otpauth_uri: string
}

const PURPOSE = 'totp-secret v1' as const

function sealSecret(kek: string | undefined, userId: string, secret: string): string {
  return kek === undefined ? secret : seal(kek, PURPOSE, userId, secret)
}

function openSecret(kek: string | undefined, userId: string, stored: string): string {
  if (!isEncryptedSecret(stored)) return stored
  const opened = kek === undefined ? undefined : unseal(kek, PURPOSE, userId, stored)
  if (opened === undefined) throw new Error('the TOTP secret does not open with this key')
  return opened
}

function totpFor(t: Pick<TotpDeps, 'config'>, label: string, secret: string): TOTP {
  return new TOTP({
    issuer: t.config.mail.platformName,
    label,
    algorithm: 'SHA1',
    digits: DIGITS,
    period: PERIOD,
    secret: Secret.fromBase32(secret),
  })
}

/**
 * Starts (or restarts) a TOTP enrolment: a new secret, stored sealed and pending until a first
 * code confirms it. An account with a confirmed credential must disable it first, so an
 * enrolment can never silently replace a working factor. The caller checked recent
 * authentication.
 */
export async function startTotpEnrolment(
  t: TotpDeps,
  user: { id: string; email: string },
): Promise<TotpEnrolment> {
  const secret = new Secret({ size: SECRET_BYTES }).base32
  const sealed = sealSecret(t.config.keyEncryptionKey, user.id, secret)
  const now = t.clock()
  await inTransaction(t.db, async (tx) => {
    const existing = await tx
      .selectFrom('totp_credentials')
      .select('confirmed_at')
      .where('user_id', '=', user.id)
      .executeTakeFirst()
    if (existing?.confirmed_at != null) {
      throw new TesseraError(
        'mfa_already_enrolled',
        'TOTP is already enrolled; disable it first (DELETE /v1/user/mfa/totp)',
      )
    }
    await tx.deleteFrom('totp_credentials').where('user_id', '=', user.id).execute()
    await tx
      .insertInto('totp_credentials')
      .values({ user_id: user.id, secret: sealed, created_at: now, confirmed_at: null })
      .execute()
  })
  return { secret, otpauth_uri: totpFor(t, user.email, secret).toString() }
}

/**
 * Confirms a pending enrolment with a first code, and issues the ten recovery codes, in one
 * transaction: shown once, in the answer. The confirming code's step counts as used.
 */
export async function confirmTotpEnrolment(
  t: TotpDeps,
  user: { id: string; email: string },
  code: string,
  client: ClientContext,
): Promise<string[]> {
  const row = await t.db
    .selectFrom('totp_credentials')
    .select(['secret', 'confirmed_at', 'created_at'])
    .where('user_id', '=', user.id)
    .executeTakeFirst()
  if (row === undefined || row.confirmed_at !== null) {
    throw new TesseraError(
      'mfa_not_enrolled',
      'No TOTP enrolment is pending; start one (POST /v1/user/mfa/totp)',
    )
  }
  // Outside the transaction: the rate limiter shares SQLite's one connection.
  const step = await matchingStep(t, user.id, row.secret, code)
  return inTransaction(t.db, async (tx) => {
    // The very enrolment the code was checked against: a restart meanwhile made a new secret.
    const confirmed = await tx
      .updateTable('totp_credentials')
      .set({ confirmed_at: t.clock(), last_used_step: step })
      .where('user_id', '=', user.id)
      .where('confirmed_at', 'is', null)
      .where('secret', '=', row.secret)
      .executeTakeFirst()
    if (confirmed.numUpdatedRows === 0n) {
      throw new TesseraError('mfa_not_enrolled', 'No TOTP enrolment is pending')
    }
    const codes = await issueRecoveryCodes(tx, t.clock, user.id)
    await recordAudit(tx, t.clock, {
      event: 'mfa_enrolled',
      userId: user.id,
      ip: client.ip,
      detail: { factor: 'totp' },
    })
    return codes
  })
}

/**
 * Checks a code against the user's confirmed credential and spends its time step: one
 * conditional UPDATE moves `last_used_step` forward only if the step is later than the last one
 * accepted, so two concurrent uses of one code cannot both pass. Wrong codes count against the
 * user's MFA budget (`mfaPerUser`), which a right one gives back. Throws `invalid_mfa_code`.
 * Not inside a transaction: the rate limiter shares SQLite's one connection.
 */
export async function spendTotpCode(t: TotpDeps, userId: string, code: string): Promise<void> {
  const row = await t.db
    .selectFrom('totp_credentials')
    .select(['secret'])
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is not', null)
    .executeTakeFirst()
  if (row === undefined) {
    throw new TesseraError('factor_not_enrolled', 'This account has no TOTP enrolled')
  }
  const step = await matchingStep(t, userId, row.secret, code)
  const spent = await t.db
    .updateTable('totp_credentials')
    .set({ last_used_step: step })
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is not', null)
    .where('last_used_step', '<', step)
    .executeTakeFirst()
  if (spent.numUpdatedRows === 0n) {
    throw new TesseraError('invalid_mfa_code', 'This code was already used; wait for the next one')
  }
}

/**
 * The time step `code` is right for (within the window), counted against the user's budget
 * before the check so parallel guesses cannot overrun it, and refunded when right.
 */
async function matchingStep(
  t: TotpDeps,
  userId: string,
  stored: string,
  code: string,
): Promise<number> {
  await t.limits.mfaPerUser.consume(userId)
  const token = code.replace(/\s/g, '')
  const totp = totpFor(t, userId, openSecret(t.config.keyEncryptionKey, userId, stored))
  const timestamp = t.clock()
  // otpauth compares every candidate in constant time.
  const delta = CODE_PATTERN.test(token)
    ? totp.validate({ token, timestamp, window: WINDOW })
    : null
  if (delta === null) {
    throw new TesseraError('invalid_mfa_code', 'The code is wrong or expired')
  }
  await t.limits.mfaPerUser.refund(userId)
  return totp.counter({ timestamp }) + delta
}

/** The user's confirmed TOTP credential: a row here means TOTP is enrolled. */
export function confirmedTotp(db: Kysely<Database>, userId: string) {
  return db
    .selectFrom('totp_credentials')
    .select('user_id')
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is not', null)
}
