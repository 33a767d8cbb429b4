import * as v from 'valibot'
import { findUserByEmail } from '../accounts/accounts.js'
import { normalizeEmail } from '../accounts/email.js'
import { changeAccountStatus } from '../admin/account-status.js'
import { ACCOUNT_TYPES, setAccountType } from '../admin/account-type.js'
import { REASON_MAX_LENGTH } from '../admin/actor.js'
import { deleteUser } from '../admin/delete-user.js'
import {
  type AdminUserView,
  listUsers,
  MAX_PAGE_SIZE,
  QUERY_MAX_LENGTH,
  type UserFilters,
} from '../admin/list-users.js'
import { userDetail } from '../admin/user-detail.js'
import type { AccountType, User } from '../db/schema.js'
import { formatPasetoTime } from '../paseto/time.js'
import type { Tessera } from '../tessera.js'
import { hasControlCharacters } from '../text.js'
import { type CliIo, printError, printLine } from './io.js'
import { readLine } from './prompt.js'

/**
 * `tessera user list|show|enable|disable|delete|set-type` (README, "Operating Tessera"): the
 * admin API's use cases run on the server host, by email, with the operator as actor (`null`,
 * audited as `cli`). Usage errors exit 2, an unknown address 1.
 */
export interface UserCommandOptions {
  email?: string | undefined
  reason?: string | undefined
  json?: boolean | undefined
  yes?: boolean | undefined
  type?: string | undefined
  verified?: string | undefined
  'email-verified'?: string | undefined
  disabled?: string | undefined
  provider?: string | undefined
  search?: string | undefined
  'created-after'?: string | undefined
  'created-before'?: string | undefined
  args?: string[] | undefined
}

const CLI_CLIENT = { ip: null, userAgent: 'tessera-cli' }

class UsageError extends Error {}

export async function userCommand(
  command: string,
  t: Tessera,
  values: UserCommandOptions,
  help: string,
  io: CliIo,
): Promise<number> {
  try {
    if (command === 'user list') return await list(t, values, io)
    const email = emailOf(values)
    const user = await findUserByEmail(t.db, normalizeEmail(email).normalized)
    if (user === undefined) {
      printError(io, `No user with email ${email}`)
      return 1
    }
    switch (command) {
      case 'user show':
        return await show(t, user, values, io)
      case 'user enable':
      case 'user disable': {
        const disabled = command === 'user disable'
        const reason = reasonOf(values, false)
        await changeAccountStatus(t, null, user.id, { disabled, reason }, CLI_CLIENT)
        printLine(
          io,
          disabled
            ? `${user.email} is disabled and all their sessions are revoked`
            : `${user.email} is enabled`,
        )
        return 0
      }
      case 'user set-type': {
        const type = values.args?.[1]
        if (type === undefined || !(ACCOUNT_TYPES as readonly string[]).includes(type)) {
          throw new UsageError(`set-type takes EMAIL TYPE, TYPE one of ${ACCOUNT_TYPES.join(', ')}`)
        }
        const reason = reasonOf(values, true)!
        const updated = await setAccountType(
          t,
          null,
          user.id,
          { accountType: type as AccountType, reason },
          CLI_CLIENT,
        )
        printLine(io, `${updated.email} is now ${updated.account_type}`)
        return 0
      }
      case 'user delete':
        return await remove(t, user, values, io)
    }
    throw new UsageError(`Unknown command: ${command}`)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    printError(io, `${error.message}\n\n${help}`)
    return 2
  }
}

/** EMAIL as the first argument, or the older `--email EMAIL`. */
function emailOf(values: UserCommandOptions): string {
  const positional = values.args?.[0]
  const email = positional ?? values.email
  if (email === undefined) throw new UsageError('An EMAIL is required')
  if (positional !== undefined && values.email !== undefined) {
    throw new UsageError('Give EMAIL or --email, not both')
  }
  return email
}

function reasonOf(values: UserCommandOptions, required: boolean): string | null {
  const reason = values.reason?.trim()
  if (reason === undefined || reason === '') {
    if (required) throw new UsageError('--reason is required')
    return null
  }
  if (reason.length > REASON_MAX_LENGTH || hasControlCharacters(reason)) {
    throw new UsageError(`--reason must be at most ${REASON_MAX_LENGTH} characters of text`)
  }
  return reason
}

const flag = (name: string, value: string | undefined): boolean | undefined => {
  if (value === undefined) return undefined
  if (value !== 'true' && value !== 'false') throw new UsageError(`--${name} takes true or false`)
  return value === 'true'
}

const time = (name: string, value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const ok = v.safeParse(v.pipe(v.string(), v.maxLength(40), v.isoTimestamp()), value).success
  if (!ok) throw new UsageError(`--${name} takes an RFC 3339 time such as 2026-01-31T00:00:00Z`)
  return Date.parse(value)
}

function filtersOf(values: UserCommandOptions): UserFilters {
  const type = values.type
  if (type !== undefined && !(ACCOUNT_TYPES as readonly string[]).includes(type)) {
    throw new UsageError(`--type is one of ${ACCOUNT_TYPES.join(', ')}`)
  }
  const search = values.search
  if (search !== undefined && (search.length > QUERY_MAX_LENGTH || hasControlCharacters(search))) {
    throw new UsageError(`--search must be at most ${QUERY_MAX_LENGTH} characters of text`)
  }
  return {
    accountType: type as AccountType | undefined,
    verified: flag('verified', values.verified),
    emailVerified: flag('email-verified', values['email-verified']),
    disabled: flag('disabled', values.disabled),
    provider: values.provider,
    createdAfter: time('created-after', values['created-after']),
    createdBefore: time('created-before', values['created-before']),
    q: search,
  }
}

/** Every matching user, newest first: a table, or one JSON object per line with `--json`. */
async function list(t: Tessera, values: UserCommandOptions, io: CliIo): Promise<number> {
  if ((values.args ?? []).length > 0) throw new UsageError('user list takes no arguments')
  const filters = filtersOf(values)
  const users: AdminUserView[] = []
  let cursor: string | undefined
  do {
    const page = await listUsers(t.db, filters, { cursor, limit: MAX_PAGE_SIZE })
    users.push(...page.users)
    cursor = page.nextCursor ?? undefined
  } while (cursor !== undefined)
  if (values.json === true) {
    for (const user of users) printLine(io, JSON.stringify(user))
    return 0
  }
  const rows = users.map((u) => [
    u.email,
    u.account_type,
    u.verified ? 'yes' : 'no',
    u.email_verified ? 'yes' : 'no',
    u.disabled ? 'yes' : 'no',
    u.created_at,
    u.id,
  ])
  printTable(io, ['EMAIL', 'TYPE', 'VERIFIED', 'EMAIL OK', 'DISABLED', 'CREATED', 'ID'], rows)
  return 0
}

function printTable(io: CliIo, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  for (const row of [header, ...rows]) {
    printLine(
      io,
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
  }
}

async function show(
  t: Tessera,
  user: User,
  values: UserCommandOptions,
  io: CliIo,
): Promise<number> {
  const detail = await userDetail(t, user.id)
  if (values.json === true) {
    printLine(io, JSON.stringify(detail))
    return 0
  }
  const u = detail.user
  printLine(io, `id              ${u.id}`)
  printLine(io, `email           ${u.email}${u.email_verified ? '' : ' (not verified)'}`)
  printLine(io, `display name    ${u.display_name ?? '-'}`)
  printLine(io, `account type    ${u.account_type}${u.verified ? ', verified' : ''}`)
  printLine(io, `disabled        ${u.disabled ? 'yes' : 'no'}`)
  printLine(io, `created         ${u.created_at}`)
  printLine(io, `identities      ${detail.identities.map((i) => i.provider).join(', ') || '-'}`)
  printLine(io, `live sessions   ${detail.sessions.length}`)
  for (const s of detail.sessions) {
    printLine(
      io,
      `  ${s.kind.padEnd(7)} ${s.id} last used ${formatPasetoTime(s.last_used_at)} ${s.ip ?? ''}`,
    )
  }
  printLine(io, 'recent events')
  for (const e of detail.auditEvents) {
    printLine(io, `  ${e.at} ${e.event}${e.ip === null ? '' : ` ${e.ip}`}`)
  }
  return 0
}

/** Erasure cannot be undone: the operator types the address again unless `--yes`. */
async function remove(
  t: Tessera,
  user: User,
  values: UserCommandOptions,
  io: CliIo,
): Promise<number> {
  if (values.yes !== true) {
    const answer = await readLine(
      io,
      `This erases ${user.email} and cannot be undone. Type the email address to confirm: `,
    )
    if (answer === undefined || normalizeEmail(answer).normalized !== user.email_normalized) {
      printError(io, 'Not confirmed: nothing was deleted (--yes skips the question)')
      return 1
    }
  }
  await deleteUser(t, null, user.id)
  printLine(io, `${user.email} is deleted: personal data erased, every session revoked`)
  return 0
}
