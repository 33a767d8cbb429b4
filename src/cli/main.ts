#!/usr/bin/env node
import { parseArgs } from 'node:util'
import * as v from 'valibot'
import { findUserByEmail, registerAccount, promoteToSuperuser, setDisabled } from '../accounts/accounts.js'
import { normalizeEmail } from '../accounts/email.js'
import { recordAudit } from '../audit/audit.js'
import { ConfigError, loadConfig } from '../config/index.js'
import { connectDatabase } from '../db/connect.js'
import { migrateToLatest } from '../db/migrate.js'
import { TesseraError } from '../errors.js'
import { emailField } from '../http/body.js'
import { listSigningKeys, rotateSigningKey } from '../keys/signing-keys.js'
import { startServer } from '../server.js'
import { createTessera } from '../tessera.js'
import { isClientCommand, runClientCommand } from './client.js'
import { readSecret } from './prompt.js'

const USAGE = `Usage: tessera <command> [options]

Server commands (read the same environment as the server; see README):
  serve                              start the HTTP server
  migrate                            apply pending database migrations
  keys rotate                        make a new signing key; the old one keeps verifying
  keys list [--all]                  list live signing keys (--all: retired ones too)
  user create-superuser --email E    create the first superuser (password asked, or stdin)
  user promote --email E             make an existing user a superuser
  user disable --email E             disable a user and end all their sessions

Client commands (talk to a running server at TESSERA_URL, default http://localhost:8000):
  user register --email E            create an account (password asked, or stdin)
  user login --email E               log in and keep the tokens in $XDG_CONFIG_HOME/tessera
  user whoami                        show the logged-in user (refreshing the tokens if needed)
  user logout                        end the session and forget its tokens

Every command accepts --help.`

const HELP: Record<string, string> = {
  serve: 'Usage: tessera serve\n\nStarts the server on HOST:PORT (default 0.0.0.0:8000), applying migrations first.',
  migrate: 'Usage: tessera migrate\n\nApplies pending migrations to DATABASE_URL and prints each one.',
  'keys rotate':
    'Usage: tessera keys rotate\n\nCreates a new active signing key. The previous key is published as "retiring" until\nevery token it signed has expired.',
  'keys list':
    'Usage: tessera keys list [--all]\n\nLists the active and retiring signing keys with their status; --all adds every retired key.',
  'user create-superuser':
    'Usage: tessera user create-superuser --email EMAIL [--display-name NAME]\n\nCreates a superuser account on this server\'s database. The password is asked without\necho, or read from the first line of standard input.',
  'user promote': 'Usage: tessera user promote --email EMAIL\n\nMakes an existing user a superuser.',
  'user disable': 'Usage: tessera user disable --email EMAIL\n\nDisables a user and revokes every session they have.',
  'user register':
    'Usage: tessera user register --email EMAIL [--display-name NAME]\n\nCreates an account on the server at TESSERA_URL (default http://localhost:8000) and\nprints it. The password is asked without echo (twice), or read from the first line of\nstandard input. Log in afterwards with tessera user login.',
  'user login':
    'Usage: tessera user login --email EMAIL\n\nLogs in to the server at TESSERA_URL (default http://localhost:8000). The password is\nasked without echo, or read from the first line of standard input. The tokens are kept\nin $XDG_CONFIG_HOME/tessera/credentials.json (default ~/.config/tessera; directory 0700,\nfile 0600), one entry per server URL, and are never printed.',
  'user whoami':
    'Usage: tessera user whoami\n\nShows the user logged in to TESSERA_URL. An expired access token is refreshed first\n(the new tokens are stored); if the session is over, the stored tokens are removed and\nyou have to log in again.',
  'user logout':
    'Usage: tessera user logout\n\nEnds the session on the server at TESSERA_URL and removes its stored tokens.',
}

async function main(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        email: { type: 'string' },
        'display-name': { type: 'string' },
        all: { type: 'boolean' },
      },
    })
  } catch (error) {
    // An unknown option or a missing option value is a usage error, like an unknown command.
    if ((error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS') !== true) throw error
    console.error(`${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const command = positionals.slice(0, positionals[0] === 'keys' || positionals[0] === 'user' ? 2 : 1).join(' ')
  if (command === '' || (values.help && HELP[command] === undefined)) {
    console.log(USAGE)
    return command === '' && !values.help ? 2 : 0
  }
  if (values.help) {
    console.log(HELP[command])
    return 0
  }
  // The client commands talk HTTP to a server: no server configuration, no database.
  if (isClientCommand(command)) return runClientCommand(command, values, HELP[command]!)

  switch (command) {
    case 'serve': {
      const config = loadConfig()
      const running = await startServer(config)
      running.tessera.logger.info(`Tessera listening on ${running.url} (database ${config.databaseUrl.split(':')[0]})`)
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
      const config = loadConfig()
      const database = await connectDatabase(config.databaseUrl, { poolSize: 1 })
      try {
        const { error, results } = await migrateToLatest(database.db)
        for (const r of results ?? []) console.log(`${r.status.padEnd(8)} ${r.migrationName}`)
        if (error !== undefined) throw error
        if ((results ?? []).length === 0) console.log('Database is up to date')
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
      const t = await createTessera({ ...loadConfig(), logLevel: 'error' })
      try {
        return await adminCommand(command, t, values)
      } finally {
        await t.close()
      }
    }
    default:
      console.error(`Unknown command: ${command}\n\n${USAGE}`)
      return 2
  }
}

async function adminCommand(
  command: string,
  t: Awaited<ReturnType<typeof createTessera>>,
  values: { email?: string | undefined; 'display-name'?: string | undefined; all?: boolean | undefined },
): Promise<number> {
  const cli = { ip: null, userAgent: 'tessera-cli' }
  if (command === 'keys rotate') {
    const { kid, retired } = await rotateSigningKey(t)
    await recordAudit(t.db, t.clock, { event: 'key_rotated', detail: { kid, retired } })
    console.log(`active   ${kid}`)
    if (retired !== null) console.log(`retiring ${retired}`)
    return 0
  }
  if (command === 'keys list') {
    for (const k of await listSigningKeys(t, { includeRetired: values.all === true })) {
      const until = k.retire_after === null ? '' : ` until ${k.retire_after}`
      console.log(`${k.status.padEnd(8)} ${k.kid} created ${k.created_at}${until}${k.encrypted ? ' (encrypted)' : ''}`)
    }
    return 0
  }
  if (values.email === undefined) {
    console.error(`--email is required\n\n${HELP[command]}`)
    return 2
  }
  if (command === 'user create-superuser') {
    // The HTTP routes check the address syntax before registerAccount; so must the CLI.
    const checked = v.safeParse(emailField, values.email)
    if (!checked.success) {
      console.error(`--email ${checked.issues[0].message}\n\n${HELP[command]}`)
      return 2
    }
    const password = await readSecret('Password: ')
    const user = await registerAccount(
      t,
      { email: values.email, password, displayName: values['display-name'] ?? null, accountType: 'superuser' },
      cli,
    )
    console.log(`Created superuser ${user.email} (${user.id})`)
    return 0
  }
  const user = await findUserByEmail(t.db, normalizeEmail(values.email).normalized)
  if (user === undefined) {
    console.error(`No user with email ${values.email}`)
    return 1
  }
  if (command === 'user promote') {
    await promoteToSuperuser(t, null, user.id, cli)
    console.log(`${user.email} is now a superuser`)
  } else {
    await setDisabled(t, user.id, true)
    console.log(`${user.email} is disabled and all their sessions are revoked`)
  }
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    if (error instanceof ConfigError || error instanceof TesseraError) {
      console.error(error instanceof TesseraError ? `${error.code}: ${error.detail}` : error.message)
    } else {
      console.error(error instanceof Error ? error.message : error)
    }
    process.exitCode = 1
  },
)
