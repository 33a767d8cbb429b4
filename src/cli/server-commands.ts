import * as v from 'valibot'
import { findUserByEmail, registerAccount, setDisabled } from '../accounts/accounts.js'
import { emailField, normalizeEmail } from '../accounts/email.js'
import { promoteToSuperuser } from '../accounts/promotion.js'
import { ConfigError, loadConfig } from '../config/index.js'
import { connectDatabase } from '../db/connect.js'
import { migrateToLatest } from '../db/migrate.js'
import { TesseraError } from '../errors.js'
import { listSigningKeys, rotateSigningKey } from '../keys/signing-keys.js'
import { startServer } from '../server.js'
import { createTessera, type Tessera } from '../tessera.js'
import { type CliIo, printError, printLine } from './io.js'
import { readSecret } from './prompt.js'

/**
 * The commands that run on the server host with the server's configuration (README, "Command
 * line"). Loaded by main.ts only for these commands, so the client commands never load the
 * server's modules.
 */
export const SERVER_COMMANDS = [
  'serve',
  'migrate',
  'keys rotate',
  'keys list',
  'user create-superuser',
  'user promote',
  'user disable',
] as const
export type ServerCommand = (typeof SERVER_COMMANDS)[number]

export function isServerCommand(command: string): command is ServerCommand {
  return (SERVER_COMMANDS as readonly string[]).includes(command)
}

interface CommandOptions {
  email?: string | undefined
  'display-name'?: string | undefined
  all?: boolean | undefined
}

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
    case 'keys rotate':
    case 'keys list':
    case 'user create-superuser':
    case 'user promote':
    case 'user disable': {
      const t = await createTessera({ ...loadConfig(io.env), logLevel: 'error' })
      try {
        return await adminCommand(command, t, values, help, io)
      } finally {
        await t.close()
      }
    }
  }
}

async function adminCommand(
  command: ServerCommand,
  t: Tessera,
  values: CommandOptions,
  help: string,
  io: CliIo,
): Promise<number> {
  const cli = { ip: null, userAgent: 'tessera-cli' }
  if (command === 'keys rotate') {
    const { kid, retired } = await rotateSigningKey(t)
    printLine(io, `active   ${kid}`)
    if (retired !== null) printLine(io, `retiring ${retired}`)
    return 0
  }
  if (command === 'keys list') {
    for (const k of await listSigningKeys(t, { includeRetired: values.all === true })) {
      const until = k.retire_after === null ? '' : ` until ${k.retire_after}`
      const encrypted = k.encrypted ? ' (encrypted)' : ''
      printLine(io, `${k.status.padEnd(8)} ${k.kid} created ${k.created_at}${until}${encrypted}`)
    }
    return 0
  }
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
  const user = await findUserByEmail(t.db, normalizeEmail(values.email).normalized)
  if (user === undefined) {
    printError(io, `No user with email ${values.email}`)
    return 1
  }
  if (command === 'user promote') {
    await promoteToSuperuser(t, null, user.id, cli)
    printLine(io, `${user.email} is now a superuser`)
  } else {
    await setDisabled(t, user.id, true)
    printLine(io, `${user.email} is disabled and all their sessions are revoked`)
  }
  return 0
}
