import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { recordAudit } from '../audit/audit.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import { isUniqueViolation } from '../db/errors.js'
import { preparedQuery } from '../db/prepared.js'
import type { AccountType, Database, User } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import { formatPasetoTime } from '../paseto/time.js'
import { recordRevocation } from '../revocations/log.js'
import { type ClientContext, revokeUserSessions } from '../sessions/sessions.js'
import { forgetDevices } from './devices.js'
import { normalizeEmail } from './email.js'
import { mailVerification } from './email-verification.js'
import type { PasswordHasher } from './password-hasher.js'
import { checkPasswordPolicy, normalizePassword } from './password-policy.js'
import { selfAssignedRole } from './roles.js'

export interface AccountDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'passwordMinLength'>
  hasher: PasswordHasher
}

export const PASSWORD_MAX_LENGTH = 1024

export interface NewAccount {
  email: string
  password: string
  displayName?: string | null | undefined
  accountType?: Extract<AccountType, 'regular' | 'service' | 'superuser'>
  /**
   * Set when the user picks a role for themselves (the sequence archive's registration): checked
   * against SELF_ASSIGNABLE_ROLES, `null` for the default one (`selfAssignedRole`). Absent: the
   * account has no role.
   */
  selfAssignedRole?: string | null | undefined
}

export interface RegistrationDeps extends AccountDeps {
  config: Pick<Config, 'passwordMinLength' | 'selfAssignableRoles' | 'issuer' | 'keyEncryptionKey'>
}

/** What clients see of a user (openapi.yaml, `User`). */
export interface UserView {
  id: string
  email: string
  display_name: string | null
  account_type: AccountType
  verified: boolean
  email_verified: boolean
  created_at: string
  role?: string
}

/** The columns `toUserView` shows: what `GET /v1/user/me` reads of the user. */
const USER_VIEW_COLUMNS = [
  'id',
  'email',
  'display_name',
  'account_type',
  'verified',
  'email_verified',
  'created_at',
  'role',
] as const

/** The part of a user row `toUserView` needs. */
export type UserViewSource = Pick<User, (typeof USER_VIEW_COLUMNS)[number]>

export function toUserView(user: UserViewSource): UserView {
  return {
    id: user.id,
    email: user.email,
    display_name: user.display_name,
    account_type: user.account_type,
    verified: user.verified === 1,
    email_verified: user.email_verified === 1,
    created_at: formatPasetoTime(user.created_at),
    ...(user.role === null ? {} : { role: user.role }),
  }
}

/** The policy a new password must meet (README, "Passwords and login"). */
export function passwordPolicy(deps: Pick<AccountDeps, 'config'>) {
  return { minLength: deps.config.passwordMinLength, maxLength: PASSWORD_MAX_LENGTH }
}

/**
 * Creates an account with a password. A taken email answers `email_taken` (a documented
 * trade-off: registration is rate-limited instead). Service accounts are verified from the start.
 * A regular account gets its verification mail, queued in the registration's transaction.
 */
export async function registerAccount(
  deps: RegistrationDeps,
  input: NewAccount,
  client: ClientContext,
): Promise<User> {
  const role =
    input.selfAssignedRole === undefined
      ? null
      : selfAssignedRole(deps.config, input.selfAssignedRole)
  const { email, normalized } = normalizeEmail(input.email)
  const password = checkPasswordPolicy(input.password, passwordPolicy(deps))
  // Checked before hashing only to save the work; the unique index decides races.
  if (await findUserByEmail(deps.db, normalized)) throw emailTaken()
  const now = deps.clock()
  const accountType = input.accountType ?? 'regular'
  const user: User = {
    id: randomUUID(),
    email,
    email_normalized: normalized,
    password_hash: await deps.hasher.hash(password),
    display_name: input.displayName ?? null,
    account_type: accountType,
    verified: accountType === 'regular' ? 0 : 1,
    // Proven only by the mailed link or code (src/accounts/email-verification.ts).
    email_verified: 0,
    disabled: 0,
    role,
    created_at: now,
    updated_at: now,
    credential_version: 0,
  }
  try {
    await deps.db.transaction().execute(async (tx) => {
      await tx.insertInto('users').values(user).execute()
      await recordAudit(tx, deps.clock, {
        event: accountType === 'superuser' ? 'superuser_created' : 'user_registered',
        userId: user.id,
        ip: client.ip,
        detail: { account_type: accountType },
      })
      // Operators vouch for the addresses of the accounts they make (service, superuser).
      if (accountType === 'regular') await mailVerification({ ...deps, db: tx }, user, client)
    })
  } catch (error) {
    if (isUniqueViolation(error)) throw emailTaken()
    throw error
  }
  return user
}

function emailTaken(): TesseraError {
  return new TesseraError('email_taken', 'An account with this email address already exists')
}

export function findUserByEmail(
  db: Kysely<Database>,
  normalized: string,
): Promise<User | undefined> {
  return userByEmail.first(db, { normalized })
}

const userByEmail = preparedQuery((db, p: { normalized: string }) =>
  db.selectFrom('users').selectAll().where('email_normalized', '=', p.normalized),
)

const userById = preparedQuery((db, p: { id: string }) =>
  db.selectFrom('users').selectAll().where('id', '=', p.id),
)

export async function getUser(db: Kysely<Database>, id: string): Promise<User> {
  const user = await userById.first(db, { id })
  if (user === undefined) throw new TesseraError('not_found', 'No such user')
  return user
}

const identitiesOfUser = preparedQuery((db, p: { userId: string }) =>
  db
    .selectFrom('identities')
    .select(['provider', 'email', 'created_at'])
    .where('user_id', '=', p.userId),
)

/**
 * `GET /v1/user/me` in one statement: the user of a live session (not revoked, not expired, the
 * user enabled: what `isSessionLive` checks) with its linked identities, a row per identity
 * (one row with null identity columns when it has none). See docs/performance.md. The user's
 * columns are listed, not `u.*`, so that it runs as a named statement on PostgreSQL
 * (db/named-statements.ts) and never reads the password hash.
 */
const liveAccountRows = preparedQuery((db, p: { sessionId: string; userId: string; now: number }) =>
  db
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .leftJoin('identities as i', 'i.user_id', 'u.id')
    .select(USER_VIEW_COLUMNS.map((column) => `u.${column}` as const))
    .select([
      'i.provider as identity_provider',
      'i.email as identity_email',
      'i.created_at as identity_created_at',
    ])
    .where('s.id', '=', p.sessionId)
    .where('s.user_id', '=', p.userId)
    .where('s.revoked_at', 'is', null)
    .where('s.expires_at', '>', p.now)
    .where('u.disabled', '=', 0),
)

/**
 * The account behind a live session, with its federated identities; undefined when the session
 * has ended or its user is disabled (the same rule as `isSessionLive`, in the same statement).
 */
export async function getLiveAccount(
  deps: { db: Kysely<Database>; clock: Clock },
  sessionId: string,
  userId: string,
): Promise<
  | {
      user: UserViewSource
      identities: { provider: string; email: string | null; created_at: number }[]
    }
  | undefined
> {
  const { rows } = await liveAccountRows.execute(deps.db, { sessionId, userId, now: deps.clock() })
  const first = rows[0]
  if (first === undefined) return undefined
  const { identity_provider: _p, identity_email: _e, identity_created_at: _c, ...user } = first
  const identities = []
  for (const row of rows) {
    if (row.identity_provider === null || row.identity_created_at === null) continue
    identities.push({
      provider: row.identity_provider,
      email: row.identity_email,
      created_at: row.identity_created_at,
    })
  }
  return { user, identities }
}

/** The federated identities linked to an account. */
export async function listIdentities(
  db: Kysely<Database>,
  userId: string,
): Promise<{ provider: string; email: string | null; created_at: number }[]> {
  return (await identitiesOfUser.execute(db, { userId })).rows
}

/**
 * Checks an email and password. Unknown email, federated-only account and wrong password all
 * answer `invalid_credentials` after the same argon2 work (a dummy verify), so neither the body,
 * the status nor the timing tells them apart. A disabled account is reported only to someone who
 * knows its password. Hashes made with older parameters are upgraded on success.
 */
export async function authenticate(
  deps: AccountDeps,
  credentials: { email: string; password: string },
  client: ClientContext,
): Promise<User> {
  const { normalized } = normalizeEmail(credentials.email)
  const password = normalizePassword(credentials.password)
  const user = await findUserByEmail(deps.db, normalized)
  const tooLong = [...password].length > PASSWORD_MAX_LENGTH
  const ok =
    user?.password_hash == null || tooLong
      ? await deps.hasher.verifyDummy(password)
      : await deps.hasher.verify(user.password_hash, password)
  if (!ok || user === undefined) {
    await recordAudit(deps.db, deps.clock, {
      event: 'login_failed',
      userId: user?.id ?? null,
      ip: client.ip,
      detail: { reason: user === undefined ? 'unknown_email' : 'wrong_password' },
    })
    throw new TesseraError('invalid_credentials', 'Invalid email or password')
  }
  if (user.disabled !== 0) throw new TesseraError('account_disabled', 'This account is disabled')
  if (user.password_hash !== null && deps.hasher.needsRehash(user.password_hash)) {
    const rehashed = await deps.hasher.hash(password)
    await deps.db
      .updateTable('users')
      .set({ password_hash: rehashed, updated_at: deps.clock() })
      .where('id', '=', user.id)
      .where('password_hash', '=', user.password_hash)
      .execute()
  }
  return user
}

export async function updateDisplayName(
  deps: Pick<AccountDeps, 'db' | 'clock'>,
  userId: string,
  displayName: string | null,
): Promise<User> {
  await deps.db
    .updateTable('users')
    .set({ display_name: displayName, updated_at: deps.clock() })
    .where('id', '=', userId)
    .execute()
  return getUser(deps.db, userId)
}

/**
 * Refuses unless `actorId` names an enabled superuser. The account type is read from the
 * database, never from the token: a demoted or disabled superuser's live token must not keep the
 * power.
 */
export async function assertSuperuser(db: Kysely<Database>, actorId: string): Promise<void> {
  const actor = await userById.first(db, { id: actorId })
  if (actor?.account_type !== 'superuser' || actor.disabled !== 0) {
    throw new TesseraError('forbidden', 'Only a superuser may do this')
  }
}

/**
 * Disables (or re-enables) a user; disabling bumps the credential version (a login checked before
 * it cannot open a session after it, `startSession`), ends every session and revokes every token
 * of the user issued before now (a revocation log entry), in one transaction. `audit` is the
 * context of the audit event (`by`, the actor; `reason`; the address that asked).
 */
export async function setDisabled(
  deps: Pick<AccountDeps, 'db' | 'clock'>,
  userId: string,
  disabled: boolean,
  audit: { detail?: Record<string, string | null>; ip?: string | null } = {},
): Promise<void> {
  await inTransaction(deps.db, async (tx) => {
    const result = await tx
      .updateTable('users')
      .set((eb) => ({
        disabled: disabled ? 1 : 0,
        updated_at: deps.clock(),
        credential_version: disabled
          ? eb('credential_version', '+', 1)
          : eb.ref('credential_version'),
      }))
      .where('id', '=', userId)
      .executeTakeFirst()
    if (result.numUpdatedRows === 0n) throw new TesseraError('not_found', 'No such user')
    if (disabled) {
      await revokeUserSessions({ db: tx, clock: deps.clock }, userId, 'user_disabled')
      // Every token issued before now, whatever session it names (docs/revocation.md).
      await recordRevocation(tx, deps.clock, { kind: 'user', userId })
      await forgetDevices(tx, userId)
    }
    await recordAudit(tx, deps.clock, {
      event: disabled ? 'user_disabled' : 'user_enabled',
      userId,
      ip: audit.ip ?? null,
      ...(audit.detail === undefined ? {} : { detail: audit.detail }),
    })
  })
}
