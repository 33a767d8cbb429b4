import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { enqueueMail } from '../mail/queue.js'
import type { RateLimits } from '../rate-limit/limits.js'
import type { ClientContext } from '../sessions/sessions.js'

/**
 * Recovery codes (README, "Second factors"): ten single-use codes, made at TOTP enrolment and on
 * request, shown once. Each has 80 random bits, so SHA-256 is enough to store it: a slow hash
 * such as argon2 protects guessable secrets (passwords) against offline guessing, and 2^80
 * candidates are out of reach with any hash. Lookup is by the hash, an exact index probe, so no
 * code byte is ever compared.
 */
export const RECOVERY_CODE_COUNT = 10
const CODE_BYTES = 10
/** Crockford base32 without I, L, O, U: unambiguous when read off paper. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** Ten groups of five is too long to type; two groups of eight, `XXXXXXXX-XXXXXXXX`. */
const CODE_PATTERN = /^[0-9A-Z]{8}-?[0-9A-Z]{8}$/

function newCode(): string {
  const bytes = randomBytes(CODE_BYTES)
  let bits = 0
  let value = 0
  let out = ''
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return `${out.slice(0, 8)}-${out.slice(8, 16)}`
}

/** The stored form: upper case, no dash or spaces, so a code typed either way is the same. */
function hashCode(code: string): string {
  const canonical = code.replace(/[\s-]/g, '').toUpperCase()
  return createHash('sha256').update(canonical, 'utf8').digest('hex')
}

/**
 * Replaces the user's recovery codes with ten new ones, in the caller's transaction, and returns
 * them: the only time they exist outside the user's hands.
 */
export async function issueRecoveryCodes(
  tx: Kysely<Database>,
  clock: Clock,
  userId: string,
): Promise<string[]> {
  const now = clock()
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newCode)
  await tx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
  await tx
    .insertInto('recovery_codes')
    .values(
      codes.map((code) => ({
        id: randomUUID(),
        user_id: userId,
        code_hash: hashCode(code),
        created_at: now,
        used_at: null,
      })),
    )
    .execute()
  return codes
}

export interface RecoveryCodeDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'issuer'>
  limits: Pick<RateLimits, 'mfaPerUser'>
}

/** New recovery codes for a user with TOTP enrolled (the caller checked recent authentication). */
export async function regenerateRecoveryCodes(
  t: RecoveryCodeDeps,
  userId: string,
  client: ClientContext,
): Promise<string[]> {
  return inTransaction(t.db, async (tx) => {
    const totp = await tx
      .selectFrom('totp_credentials')
      .select('user_id')
      .where('user_id', '=', userId)
      .where('confirmed_at', 'is not', null)
      .executeTakeFirst()
    if (totp === undefined) {
      throw new TesseraError('mfa_not_enrolled', 'Recovery codes back up TOTP: enrol it first')
    }
    const codes = await issueRecoveryCodes(tx, t.clock, userId)
    await recordAudit(tx, t.clock, {
      event: 'recovery_codes_regenerated',
      userId,
      ip: client.ip,
    })
    return codes
  })
}

/**
 * Spends one recovery code: one conditional UPDATE marks it used, so a code works once even when
 * presented twice at the same moment. Audited, and the owner is mailed (someone who used it
 * without them knows their password too). Wrong codes count against the user's MFA budget.
 */
export async function spendRecoveryCode(
  t: RecoveryCodeDeps,
  user: { id: string; email: string },
  code: string,
  client: ClientContext,
): Promise<void> {
  await t.limits.mfaPerUser.consume(user.id)
  const now = t.clock()
  const spent = CODE_PATTERN.test(code.trim().toUpperCase())
    ? await inTransaction(t.db, async (tx) => {
        const used = await tx
          .updateTable('recovery_codes')
          .set({ used_at: now })
          .where('user_id', '=', user.id)
          .where('code_hash', '=', hashCode(code))
          .where('used_at', 'is', null)
          .executeTakeFirst()
        if (used.numUpdatedRows === 0n) return false
        const left = await tx
          .selectFrom('recovery_codes')
          .select((eb) => eb.fn.countAll<string | number>().as('n'))
          .where('user_id', '=', user.id)
          .where('used_at', 'is', null)
          .executeTakeFirstOrThrow()
        await recordAudit(tx, t.clock, {
          event: 'recovery_code_used',
          userId: user.id,
          ip: client.ip,
          detail: { remaining: Number(left.n) },
        })
        await enqueueMail(tx, t.clock, {
          to: user.email,
          template: 'recovery-code-used',
          data: { remaining: String(Number(left.n)), link: `${t.config.issuer}/account` },
        })
        return true
      })
    : false
  if (!spent) throw new TesseraError('invalid_mfa_code', 'The recovery code is wrong or used')
  await t.limits.mfaPerUser.refund(user.id)
}

/** The user's unused recovery codes: a row here means recovery codes are enrolled. */
export function unusedRecoveryCodes(db: Kysely<Database>, userId: string) {
  return db
    .selectFrom('recovery_codes')
    .select('id')
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
}
