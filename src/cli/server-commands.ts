import * as v from 'valibot'
import { findUserByEmail, registerAccount } from '../accounts/accounts.js'
import { emailField, normalizeEmail } from '../accounts/email.js'
import { resetRequestNow } from '../accounts/password-reset.js'
import { promoteToSuperuser } from '../accounts/promotion.js'
import { createClient, listClients, parsePermissions, revokeClient } from '../clients/clients.js'
import { type Config, ConfigError, loadConfig } from '../config/index.js'
import { connectDatabase } from '../db/connect.js'
import { migrateToLatest } from '../db/migrate.js'
import { TesseraError } from '../errors.js'
import {
  type KeyInfo,
  listSigningKeys,
  publishNextSigningKey,
  revokeSigningKey,
  rotateSigningKey,
} from '../keys/rotation.js'
import { adminResetSecondFactors } from '../mfa/reset.js'
import { formatPasetoTime } from '../paseto/time.js'
import { startServer } from '../server.js'
import { createTessera, type Tessera } from '../tessera.js'
import { type CliIo, printError, printLine } from './io.js'
import {
  auditExportCommand,
  backupCommand,
  missingDatabase,
  pruneCommand,
  UsageError,
} from './ops-commands.js'
import { readSecret } from './prompt.js'
import { type UserCommandOptions, userCommand } from './user-commands.js'

/**
 * The commands that run on the server host with the server's configuration (README, "Command
 * line"). Loaded by main.ts only for these commands, so the client commands never load the
 * server's modules.
 */
export const SERVER_COMMANDS = [
  'serve',
  'migrate',
  'keys rotate',
  'keys revoke',
  'keys list',
  'user create-superuser',
  'user promote',
  'user disable',
  'user enable',
  'user list',
  'user show',
  'user delete',
  'user set-type',
  'user reset-mfa',
  'client create',
  'client list',
  'client revoke',
  'user reset-password',
  'audit',
  'audit export',
  'prune',
  'backup',
] as const
export type ServerCommand = (typeof SERVER_COMMANDS)[number]

export function isServerCommand(command: string): command is ServerCommand {
  return (SERVER_COMMANDS as readonly string[]).includes(command)
}

interface CommandOptions extends UserCommandOptions {
  email?: string | undefined
  'display-name'?: string | undefined
  all?: boolean | undefined
  now?: boolean | undefined
  permission?: string | undefined
  force?: boolean | undefined
  since?: string | undefined
  until?: string | undefined
  user?: string | undefined
  event?: string | undefined
  /** The positional arguments after the command (`keys revoke KID`). */
  args?: string[] | undefined
}

/** The operator's user commands, by email (src/cli/user-commands.ts). */
const USER_COMMANDS = new Set<string>([
  'user list',
  'user show',
  'user enable',
  'user disable',
  'user delete',
  'user set-type',
])

/** A PASERK id, as `keys list` prints it: `k4.pid.` and 44 base64url characters. */
const KEY_ID = /^k4\.pid\.[A-Za-z0-9_-]{44}$/

/** Runs one server command; configuration and domain errors are printed, exit code 1. */
export async function runServerCommand(
  command: ServerCommand,
  values: CommandOptions,
  help: string,
  io: CliIo,
): Promise<number> {
  try {
    return await run(command, values, help, io)
  } catch (error) {
    if (error instanceof UsageError) {
      printError(io, `${error.message}\n\n${help}`)
      return 2
    }
    if (error instanceof TesseraError) printError(io, `${error.code}: ${error.detail}`)
    else if (error instanceof ConfigError) printError(io, error.message)
    else throw error
    return 1
  }
}

async function run(
  command: ServerCommand,
  values: CommandOptions,
  help: string,
  io: CliIo,
): Promise<number> {
  switch (command) {
    case 'serve': {
      const config = loadConfig(io.env)
      const running = await startServer(config)
      running.tessera.logger.info(
        `Tessera listening on ${running.url} (database ${config.databaseUrl.split(':')[0]})`,
      )
      await new Promise<void>((resolve) => {
        const stop = () => {
          running.tessera.logger.info('shutting down')
          void running.close().then(resolve)
        }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      return 0
    }
    case 'migrate': {
      const config = loadConfig(io.env)
      const database = await connectDatabase(config.databaseUrl, {
        poolSize: 1,
        connectTimeoutMs: config.databaseConnectTimeout * 1000,
      })
      try {
        const { error, results } = await migrateToLatest(database.db)
        for (const r of results ?? []) printLine(io, `${r.status.padEnd(8)} ${r.migrationName}`)
        if (error !== undefined) throw error
        if ((results ?? []).length === 0) printLine(io, 'Database is up to date')
        return 0
      } finally {
        await database.close()
      }
    }
    case 'audit':
      printError(io, help)
      return 2
    case 'backup': {
      const config = existingDatabaseConfig(io)
      if (config === undefined) return 1
      return backupCommand(config, values.args ?? [], io)
    }
    case 'audit export':
    case 'prune':
    case 'keys rotate':
    case 'keys revoke':
    case 'keys list':
    case 'user create-superuser':
    case 'user promote':
    case 'user disable':
    case 'user enable':
    case 'user list':
    case 'user show':
    case 'user delete':
    case 'user set-type':
    case 'user reset-mfa':
    case 'client create':
    case 'client list':
    case 'client revoke':
    case 'user reset-password': {
      const config = existingDatabaseConfig(io)
      if (config === undefined) return 1
      const t = await createTessera({ ...config, logLevel: 'error' })
      try {
        return await adminCommand(command, t, values, help, io)
      } finally {
        await t.close()
      }
    }
  }
}

/**
 * The configuration of a command that works on the server's database, or undefined (the reason
 * printed) when that SQLite database does not exist: only serve and migrate create it (README,
 * "Command line").
 */
function existingDatabaseConfig(io: CliIo): Config | undefined {
  const config = loadConfig(io.env)
  const missing = missingDatabase(config)
  if (missing === undefined) return config
  printError(io, missing)
  return undefined
}

async function adminCommand(
  command: ServerCommand,
  t: Tessera,
  values: CommandOptions,
  help: string,
  io: CliIo,
): Promise<number> {
  const cli = { ip: null, userAgent: 'tessera-cli' }
  if (command === 'prune') return pruneCommand(t, io)
  if (command === 'audit export') return auditExportCommand(t, values, io)
  if (command.startsWith('keys ')) return keysCommand(command, t, values, help, io)
  if (command.startsWith('client ')) return clientCommand(command, t, values, help, io)
  if (USER_COMMANDS.has(command)) return userCommand(command, t, values, help, io)
  if (values.email === undefined) {
    printError(io, `--email is required\n\n${help}`)
    return 2
  }
  if (command === 'user create-superuser') {
    // The address syntax the HTTP routes check before registerAccount (accounts/email.ts).
    const checked = v.safeParse(emailField, values.email)
    if (!checked.success) {
      printError(io, `--email ${checked.issues[0].message}\n\n${help}`)
      return 2
    }
    // The first superuser is made here; more are promoted by one (README, "Command line"), so
    // a second create-superuser is a mistake unless the operator says otherwise.
    const existing = await t.db
      .selectFrom('users')
      .select('email')
      .where('account_type', '=', 'superuser')
      .executeTakeFirst()
    if (existing !== undefined && values.force !== true) {
      printError(
        io,
        `A superuser exists already (${existing.email}); promote users with tessera user ` +
          'promote, or pass --force to create another one',
      )
      return 1
    }
    const password = await readSecret(io, 'Password: ')
    const user = await registerAccount(
      t,
      {
        email: values.email,
        password,
        displayName: values['display-name'] ?? null,
        accountType: 'superuser',
      },
      cli,
    )
    printLine(io, `Created superuser ${user.email} (${user.id})`)
    return 0
  }
  if (command === 'user reset-password') return resetPasswordCommand(t, values.email, help, io)
  const user = await findUserByEmail(t.db, normalizeEmail(values.email).normalized)
  if (user === undefined) {
    printError(io, `No user with email ${values.email}`)
    return 1
  }
  if (command === 'user reset-mfa') {
    await adminResetSecondFactors(t, null, user.id, 'reset on the server host', cli)
    printLine(io, `${user.email} has no second factor now and all their sessions are revoked`)
    return 0
  }
  await promoteToSuperuser(t, null, user.id, cli)
  printLine(io, `${user.email} is now a superuser`)
  return 0
}

/**
 * `tessera user reset-password`: the operator's form of the forgot-password request. It says what
 * was queued (the operator may know which accounts exist), mails nothing to an address without
 * an account, and is not held to the per-address budget of mails. It resolves the request at
 * once rather than leaving it for the server's pass: the operator is not who the answer's
 * sameness guards against (README, "Password reset").
 */
async function resetPasswordCommand(
  t: Tessera,
  email: string,
  help: string,
  io: CliIo,
): Promise<number> {
  const checked = v.safeParse(emailField, email)
  if (!checked.success) {
    printError(io, `--email ${checked.issues[0].message}\n\n${help}`)
    return 2
  }
  const user = await findUserByEmail(t.db, normalizeEmail(checked.output).normalized)
  if (user === undefined || user.disabled === 1) {
    printError(io, `No account with email ${email} can be reset (none, or disabled)`)
    return 1
  }
  const outcome = await resetRequestNow(t, checked.output, { ip: null, userAgent: 'tessera-cli' })
  printLine(
    io,
    outcome === 'federated'
      ? `${email} signs in with a provider only: a mail saying how is queued`
      : `A password reset link for ${email} is queued (valid 30 minutes); the server sends it`,
  )
  return 0
}

/** `tessera keys ...` (README, "Keys"); the status word leads each line, then the key id. */
async function keysCommand(
  command: ServerCommand,
  t: Tessera,
  values: CommandOptions,
  help: string,
  io: CliIo,
): Promise<number> {
  // keys rotate prints the table keys list prints, after the change (what is published now).
  if (command === 'keys rotate' && values.now === true) {
    const { withdrawn } = await rotateSigningKey(t)
    await printKeys(t, io, false)
    if (withdrawn !== null) printError(io, `The pending next key ${withdrawn} was withdrawn.`)
    return 0
  }
  if (command === 'keys rotate') {
    const published = await publishNextSigningKey(t)
    const at = formatPasetoTime(published.activatesAt)
    if (published.outcome === 'pending') {
      printError(
        io,
        `A rotation is already pending: ${published.kid} becomes active at ${at}. ` +
          'keys rotate --now replaces it with a key that signs at once.',
      )
      return 1
    }
    await printKeys(t, io, false)
    printError(
      io,
      `${published.kid} is published now and signs from ${at}, once verifiers have it.`,
    )
    return 0
  }
  if (command === 'keys revoke') {
    const [kid, ...extra] = values.args ?? []
    if (kid === undefined || extra.length > 0 || !KEY_ID.test(kid)) {
      printError(io, `keys revoke takes one key id (k4.pid....)\n\n${help}`)
      return 2
    }
    const revoked = await revokeSigningKey(t, kid)
    if (revoked.outcome === 'unknown') {
      printError(io, `No signing key ${kid}`)
      return 1
    }
    if (revoked.outcome === 'already_revoked') {
      printLine(io, `revoked  ${kid} (already)`)
      return 0
    }
    printLine(io, `revoked  ${kid} (was ${revoked.was})`)
    if (revoked.activated !== null) printLine(io, `active   ${revoked.activated}`)
    return 0
  }
  await printKeys(t, io, values.all === true)
  return 0
}

async function printKeys(t: Tessera, io: CliIo, all: boolean): Promise<void> {
  for (const key of await listSigningKeys(t, { all })) printLine(io, keyLine(key))
}

/**
 * `tessera client ...` (README, "Service clients"). The secret is printed once, by `create`,
 * and never again: only its hash is kept.
 */
async function clientCommand(
  command: ServerCommand,
  t: Tessera,
  values: CommandOptions,
  help: string,
  io: CliIo,
): Promise<number> {
  const args = values.args ?? []
  if (command === 'client create') {
    const [name, ...extra] = args
    if (name === undefined || extra.length > 0) {
      printError(io, `client create takes one NAME\n\n${help}`)
      return 2
    }
    const created = await createClient(t, name, parsePermissions(values.permission ?? ''))
    printLine(io, `client_id      ${created.id}`)
    printLine(io, `client_secret  ${created.secret}`)
    printLine(io, `permissions    ${created.permissions.join(',') || '(none)'}`)
    printError(io, "The secret is shown only now; store it in the service's secret store.")
    return 0
  }
  if (command === 'client revoke') {
    const [id, ...extra] = args
    if (id === undefined || extra.length > 0) {
      printError(io, `client revoke takes one client id\n\n${help}`)
      return 2
    }
    const outcome = await revokeClient(t, id)
    if (outcome === 'unknown') {
      printError(io, `No client ${id}`)
      return 1
    }
    printLine(io, `revoked  ${id}${outcome === 'already_revoked' ? ' (already)' : ''}`)
    return 0
  }
  for (const client of await listClients(t)) {
    const dates = [`created ${formatPasetoTime(client.createdAt)}`]
    if (client.lastUsedAt !== null) dates.push(`last used ${formatPasetoTime(client.lastUsedAt)}`)
    if (client.revokedAt !== null) dates.push(`revoked ${formatPasetoTime(client.revokedAt)}`)
    const status = client.revokedAt === null ? 'active' : 'revoked'
    const permissions = client.permissions.join(',') || '-'
    printLine(
      io,
      `${status.padEnd(8)} ${client.id} ${client.name} [${permissions}] ${dates.join(' ')}`,
    )
  }
  return 0
}

/** One `keys list` line: status, kid, and the dates that status has. */
function keyLine(k: KeyInfo): string {
  const dates = [`created ${k.created_at}`]
  if (k.activates_at !== null) {
    dates.push(`${k.status === 'next' ? 'activates' : 'activated'} ${k.activates_at}`)
  }
  if (k.retire_after !== null && k.status !== 'revoked') {
    dates.push(`${k.status === 'retiring' ? 'until' : 'retired'} ${k.retire_after}`)
  }
  if (k.revoked_at !== null) dates.push(`revoked ${k.revoked_at}`)
  const encrypted = k.encrypted ? ' (encrypted)' : ''
  return `${k.status.padEnd(8)} ${k.kid} ${dates.join(' ')}${encrypted}`
}
