#!/usr/bin/env node
import { format, parseArgs } from 'node:util'
import { isClientCommand } from './client-commands.js'
import { type CliIo, printError, printLine, processIo } from './io.js'

const USAGE = `Usage: tessera <command> [options]

Server commands (read the same environment as the server; see README):
  serve                              start the HTTP server
  migrate                            apply pending database migrations
  keys rotate [--now]                publish the next signing key; it signs once verifiers
                                     have it (--now: at once, for emergencies)
  keys revoke KID                    withdraw a signing key at once; its tokens stop verifying
  keys list [--all]                  list the next, active and retiring signing keys
                                     (--all: retired and revoked ones too)
  user create-superuser --email E [--force]
                                     create the first superuser (password asked, or stdin)
  user promote --email E             make an existing user a superuser
  user list [--type T] [--search PREFIX] [--disabled true|false] [--json] ...
                                     list users (filters as GET /v1/admin/users)
  user show EMAIL [--json]           a user with identities, live sessions and recent events
  user disable EMAIL [--reason R]    disable a user and end all their sessions
  user enable EMAIL [--reason R]     enable a disabled user again
  user set-type EMAIL TYPE --reason R
                                     set the account type (regular, academic, service,
                                     superuser)
  user delete EMAIL [--yes]          erase a user's personal data (asks to confirm)
  user reset-mfa --email E           remove a user's second factors and end their sessions
  client create NAME --permission P,...
                                     create a service client; prints its id and secret once
  client list                        list the service clients
  client revoke ID                   revoke a service client; its tokens stop working
  user reset-password --email E      mail the user a password reset link (the server sends it)
  audit export --since T [--until T] [--user EMAIL|ID] [--event E]
                                     print audit events as JSON lines, oldest first (for a SIEM)
  prune                              delete what is no longer needed now (for cron)
  backup PATH                        copy the SQLite database to PATH while the server serves

Client commands (talk to a running server at TESSERA_URL, default http://localhost:8000):
  user register --email E            create an account (password asked, or stdin)
  user login [--browser|--device|--password --email E] [--provider P]
                                     log in and keep the tokens in $XDG_CONFIG_HOME/tessera
  user whoami                        show the logged-in user, its account type and verification
  user verify                        verify the logged-in account as academic with CILogon
  user logout                        end the session and forget its tokens
  token create --name N [--audience A] [--scope S] [--expires-in 90d]
                                     make a personal access token (its secret printed once)
  token list                         list your personal access tokens and job tokens
  token revoke ID|--all              revoke one token, or all of them
  token mint --audience A [--ttl 12h] [--scope S]
                                     print a job token: an access token for one audience

Every command accepts --help.`

/** Each command's --help: a usage line, a blank line, then what it does. */
const HELP: Record<string, string> = {
  serve: help(
    'Usage: tessera serve',
    '',
    'Starts the server on HOST:PORT (default 0.0.0.0:8000), applying migrations first.',
  ),
  migrate: help(
    'Usage: tessera migrate',
    '',
    'Applies pending migrations to DATABASE_URL and prints each one.',
  ),
  'keys rotate': help(
    'Usage: tessera keys rotate [--now]',
    '',
    'Publishes a new signing key as "next" in GET /v1/keys. It becomes the active key, without',
    'anyone coming back for it, KEY_ROTATION_DELAY seconds later (by default KEYS_MAX_AGE + 60),',
    'when every verifier has fetched it; the previous key is then published as "retiring"',
    'until every token it signed has expired. Refused while another rotation is pending.',
    '',
    '--now  the new key signs at once (an emergency: verifiers that fetched the keys within',
    '       their refetch cooldown refuse its tokens until they fetch again); a pending next',
    '       key is withdrawn.',
  ),
  'keys revoke': help(
    'Usage: tessera keys revoke KID',
    '',
    'Withdraws the signing key KID (a k4.pid. id, as keys list shows) at once: it leaves',
    'GET /v1/keys, Tessera stops accepting tokens it signed within a second, and if it was the',
    'active key a fresh key becomes active at once.',
  ),
  'keys list': help(
    'Usage: tessera keys list [--all]',
    '',
    'Lists the next, active and retiring signing keys with their dates (created, activates or',
    'activated, retiring until); --all adds every retired and revoked key.',
  ),
  'user create-superuser': help(
    'Usage: tessera user create-superuser --email EMAIL [--display-name NAME]',
    '',
    "Creates a superuser account on this server's database. The password is asked without",
    'echo, or read from the first line of standard input. Refused when a superuser exists',
    '(promote users with tessera user promote instead) unless --force is given.',
  ),
  'user promote': help(
    'Usage: tessera user promote --email EMAIL',
    '',
    'Makes an existing user a superuser.',
  ),
  'user disable': help(
    'Usage: tessera user disable EMAIL [--reason REASON]',
    '',
    'Disables a user and revokes every session they have (their access tokens stop working at',
    'every verifier following the revocation feed). The reason goes into the audit event.',
    '--email EMAIL is accepted instead of EMAIL.',
  ),
  'user enable': help(
    'Usage: tessera user enable EMAIL [--reason REASON]',
    '',
    'Enables a disabled user again; they log in afresh (their old sessions stay ended).',
  ),
  'user list': help(
    'Usage: tessera user list [--type TYPE] [--verified true|false] [--email-verified true|false]',
    '                         [--disabled true|false] [--provider P] [--search PREFIX]',
    '                         [--created-after TIME] [--created-before TIME] [--json]',
    '',
    'Lists the users, newest first, as a table (--json: one JSON object per line). --search is',
    'a case-insensitive prefix of the email address or display name; TIME is RFC 3339',
    '(2026-01-31T00:00:00Z); --provider lists users with an identity linked at P.',
  ),
  'user show': help(
    'Usage: tessera user show EMAIL [--json]',
    '',
    'Shows one user: account, linked identities, live sessions and the latest audit events.',
  ),
  'user set-type': help(
    'Usage: tessera user set-type EMAIL TYPE --reason REASON',
    '',
    'Sets the account type: regular, academic, service or superuser (every type but regular is',
    'verified). The reason is required and goes into the audit event.',
  ),
  'user delete': help(
    'Usage: tessera user delete EMAIL [--yes]',
    '',
    'Erases the account (README, "Deleting an account"): email, name, password hash,',
    'identities, sessions and tokens are deleted and every token is revoked; only a',
    'pseudonymous audit trail stays, and the address can register again. Asks for the address',
    'once more to confirm (on a terminal, or the first line of standard input) unless --yes.',
  ),
  'user reset-mfa': help(
    'Usage: tessera user reset-mfa --email EMAIL',
    '',
    "Removes a user's second factors (TOTP and recovery codes), for one who lost them, and",
    'revokes every session they have; audited. Their password alone signs in again.',
  ),
  'client create': help(
    'Usage: tessera client create NAME [--permission introspect,register-service,read-users]',
    '',
    'Creates a service client for the service NAME and prints its client_id and client_secret',
    '(tsr_cs_...) once: only a hash of the secret is kept. Every client may use the',
    'client_credentials grant; --permission adds, comma-separated: introspect (POST',
    '/v1/token/introspect), register-service (POST /v1/user/auth/register-service), read-users',
    '(GET /v1/service/users/{id}).',
  ),
  'client list': help(
    'Usage: tessera client list',
    '',
    'Lists every service client: status, client_id, name, permissions and dates.',
  ),
  'client revoke': help(
    'Usage: tessera client revoke CLIENT_ID',
    '',
    'Revokes one service client: its secret stops working at once, and its access tokens stop',
    'working at Tessera and at every verifier following the revocation feed. Other clients are',
    'not affected.',
  ),
  'user reset-password': help(
    'Usage: tessera user reset-password --email EMAIL',
    '',
    'Queues the password reset mail POST /v1/user/auth/password/forgot would (README,',
    '"Password reset"): a link valid 30 minutes for an account with a password, how to sign',
    'in for a federated-only one. The running server sends it. Prints what was queued.',
  ),
  audit: help(
    'Usage: tessera audit export --since T [--until T] [--user EMAIL|ID] [--event E]',
    '',
    'Audit log commands (README, "Audit log"). audit export prints the events as JSON lines.',
  ),
  'audit export': help(
    'Usage: tessera audit export --since T [--until T] [--user EMAIL|ID] [--event E]',
    '',
    'Prints the audit events from --since (inclusive) to --until (exclusive; default now), one',
    'JSON object per line, oldest first, read in batches: pipe it to a SIEM shipper. T is a date',
    '(2026-01-31), an RFC 3339 date-time (2026-01-31T12:00:00Z) or a time ago (30m, 12h, 7d).',
    '--user keeps the events of one account (by email, or by id: a deleted account keeps only',
    'its id); --event one event name (login_failed, user_disabled, ...). The count goes to',
    'standard error. Events older than AUDIT_RETENTION_DAYS (default 365) have been pruned.',
  ),
  prune: help(
    'Usage: tessera prune',
    '',
    'Runs one pass of the retention job now (README, "Storage and retention"): deletes the',
    'refresh tokens, sessions, codes, rate-limit counters and audit events no longer needed,',
    'in small batches, while the server serves, and prints the rows deleted per table. The',
    'server does this itself every PRUNE_INTERVAL seconds; this is for PRUNE_INTERVAL=0 and',
    'cron. If another process is pruning the database, it does nothing.',
  ),
  backup: help(
    'Usage: tessera backup PATH',
    '',
    'Copies the SQLite database to PATH (which must not exist; created 0600) through the',
    'online backup API of SQLite: a consistent copy while the server serves. Keep the',
    'key-encryption key apart from it. On PostgreSQL it says to use pg_dump (README, "Backups").',
  ),
  'user register': help(
    'Usage: tessera user register --email EMAIL [--display-name NAME]',
    '',
    'Creates an account on the server at TESSERA_URL (default http://localhost:8000) and',
    'prints it. The password is asked without echo (twice), or read from the first line of',
    'standard input. Log in afterwards with tessera user login.',
  ),
  'user login': help(
    'Usage: tessera user login [--browser [--provider P] | --device | --password --email EMAIL]',
    '',
    'Logs in to the server at TESSERA_URL (default http://localhost:8000), by one of:',
    '  --browser   opens the system browser ($BROWSER if set, else xdg-open or open) at',
    "              Tessera's sign-in page and receives the login on 127.0.0.1; falls back to",
    '              --device when no browser can be opened. --provider P (cilogon, github,',
    '              google, gitlab, orcid) goes straight to that provider.',
    '  --device    prints a URL, a code and a QR code: open the URL on any device (a phone,',
    '              a laptop), sign in, enter the code and approve. For machines without a',
    '              browser, such as an HPC login node over SSH.',
    '  --password  with --email: the password is asked without echo, or read from the first',
    '              line of standard input.',
    'Without a method: --password if --email is given, else --browser where there is a',
    'display (macOS, or DISPLAY or WAYLAND_DISPLAY set), --device where there is none.',
    'Ctrl-C cancels a waiting login (exit status 130). The tokens are kept in',
    '$XDG_CONFIG_HOME/tessera/credentials.json (default ~/.config/tessera; directory 0700,',
    'file 0600), one entry per server URL, and are never printed.',
  ),
  'user whoami': help(
    'Usage: tessera user whoami',
    '',
    'Shows the user logged in to TESSERA_URL: email, account type (regular, academic,',
    'service, superuser) and whether it is verified. An expired access token is refreshed first',
    '(the new tokens are stored); if the session is over, the stored tokens are removed and',
    'you have to log in again.',
  ),
  'user verify': help(
    'Usage: tessera user verify',
    '',
    'Verifies the account logged in to TESSERA_URL as academic: sign in with your institution',
    "through CILogon, and CILogon is linked to the account. The server's single-use link (5",
    'minutes) opens in the system browser where there is one ($BROWSER, or a display); otherwise',
    'it is printed with a QR code, to open on another device. Linking needs a recent login: the',
    'password is asked (without echo, or the first line of standard input); an account without',
    'one logs in again first. Waits until the account is verified (at most 10 minutes; Ctrl-C',
    'cancels, exit status 130).',
  ),
  'token create': help(
    'Usage: tessera token create --name NAME [--audience A] [--scope "read write"]',
    '                            [--expires-in 90d]',
    '',
    'Makes a personal access token for scripts and pipelines (README, "Scripts, pipelines and',
    'services"): named, for one audience (default TESSERA_AUDIENCE of the server), with the',
    'scopes given (default all), expiring after --expires-in (30m, 12h, 90d, 1y; default 30d,',
    'at most PAT_MAX_LIFETIME). The secret (tsr_pat_...) is printed to standard output, once;',
    'a script exchanges it for short-lived access tokens. Needs a recent login: the password',
    'is asked (without echo, or the first line of standard input).',
  ),
  'token list': help(
    'Usage: tessera token list',
    '',
    'Lists your live personal access tokens and job tokens: id, kind (pat or job), name,',
    'prefix, audience, scopes, when made, last used and when they expire. Never a secret.',
  ),
  'token revoke': help(
    'Usage: tessera token revoke ID | --all',
    '',
    'Revokes one token (an id from tessera token list), or every one with --all. Access tokens',
    'made from it stop working at services following the revocation feed within a second.',
  ),
  'token mint': help(
    'Usage: tessera token mint --audience A [--ttl 12h] [--scope S] [--name NAME]',
    '',
    'Prints a job token to standard output: an access token for the one audience A, living',
    '--ttl (default 12h, at most JOB_TOKEN_MAX_TTL, 24h by default), not refreshable. For a',
    "batch job's environment: export TESSERA_TOKEN=$(tessera token mint --audience seqdb).",
    'It is listed with your tokens and revocable. Needs a recent login, like token create.',
  ),
  'user logout': help(
    'Usage: tessera user logout',
    '',
    'Ends the session on the server at TESSERA_URL and removes its stored tokens.',
  ),
}

function help(...lines: string[]): string {
  return lines.join('\n')
}

/**
 * Runs `tessera <argv>` over `io` and answers its exit code: 0, 1 for a failure (its message on
 * stderr), 2 for a usage error. main() runs it for bin/tessera.cjs; tests run it in-process.
 */
export async function runTessera(argv: string[], io: CliIo): Promise<number> {
  try {
    return await run(argv, io)
  } catch (error) {
    printError(io, error instanceof Error ? error.message : format(error))
    return 1
  }
}

/** The command over this process's arguments, environment and streams (bin/tessera.cjs). */
export function main(): void {
  void runTessera(process.argv.slice(2), processIo()).then((code) => {
    process.exitCode = code
  })
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  email: { type: 'string' },
  'display-name': { type: 'string' },
  all: { type: 'boolean' },
  now: { type: 'boolean' },
  password: { type: 'boolean' },
  device: { type: 'boolean' },
  browser: { type: 'boolean' },
  provider: { type: 'string' },
  permission: { type: 'string' },
  name: { type: 'string' },
  audience: { type: 'string' },
  scope: { type: 'string' },
  'expires-in': { type: 'string' },
  ttl: { type: 'string' },
  reason: { type: 'string' },
  json: { type: 'boolean' },
  yes: { type: 'boolean' },
  type: { type: 'string' },
  verified: { type: 'string' },
  'email-verified': { type: 'string' },
  disabled: { type: 'string' },
  search: { type: 'string' },
  'created-after': { type: 'string' },
  'created-before': { type: 'string' },
  force: { type: 'boolean' },
  since: { type: 'string' },
  until: { type: 'string' },
  user: { type: 'string' },
  event: { type: 'string' },
} as const

async function run(argv: string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof OPTIONS }>
  >
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS })
  } catch (error) {
    // An unknown option or a missing option value is a usage error, like an unknown command.
    if ((error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS') !== true)
      throw error
    printError(io, `${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const command = positionals
    .slice(0, ['keys', 'user', 'client', 'token', 'audit'].includes(positionals[0] ?? '') ? 2 : 1)
    .join(' ')
  if (command === '' || (values.help && HELP[command] === undefined)) {
    printLine(io, USAGE)
    return command === '' && !values.help ? 2 : 0
  }
  if (values.help) {
    printLine(io, HELP[command]!)
    return 0
  }
  // The client commands talk HTTP to a server: no server configuration, no database, and none of
  // the server's modules loaded (a login node's CLI starts in a fraction of the time).
  if (isClientCommand(command)) {
    const args = positionals.slice(2)
    const { runClientCommand } = await import('./client.js')
    return runClientCommand(command, { ...values, args }, HELP[command]!, io)
  }
  const server = await import('./server-commands.js')
  if (!server.isServerCommand(command)) {
    printError(io, `Unknown command: ${command}\n\n${USAGE}`)
    return 2
  }
  const args = positionals.slice(command.split(' ').length)
  return server.runServerCommand(command, { ...values, args }, HELP[command]!, io)
}
