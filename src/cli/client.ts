import { type Answer, type AuthorizedRequest, expectOk, ProblemError } from './answer.js'
import { browserLogin } from './browser-login.js'
import { cancellableOnInterrupt } from './cancel.js'
import type { ClientCommand } from './client-commands.js'
import { deviceLogin, type ObtainedTokens } from './device-login.js'
import { CliFailure } from './failure.js'
import { type CliIo, printError, printLine } from './io.js'
import { chooseLoginMethod, type LoginOptions } from './login-method.js'
import { readSecret, secretReader } from './prompt.js'
import {
  type StoredCredentials,
  TokenStore,
  TokenStoreError,
  type Transaction,
} from './token-store.js'
import { runTokenCommand, type TokenValues } from './tokens.js'
import { verifyAcademic } from './verify.js'

/**
 * The client commands: `tessera user register|login|whoami|verify|logout` talk to a running
 * server over HTTP. They read only TESSERA_URL and XDG_CONFIG_HOME (never the server's
 * configuration, never a database). Passwords come from readSecret (no echo on a terminal, else
 * the first line of stdin); tokens live only in the credentials file (token-store.ts), never in
 * argv, environment or output.
 */

export const DEFAULT_TESSERA_URL = 'http://localhost:8000'
/** An access token this close to its expiry is refreshed before use. */
const REFRESH_MARGIN_MS = 30_000
const REQUEST_TIMEOUT_MS = 30_000
const USER_AGENT = 'tessera-cli'
/** Refresh answers meaning the stored session is over: the user has to log in again. */
const SESSION_OVER = new Set(['invalid_refresh_token', 'refresh_token_reused', 'validation_failed'])

function notLoggedIn(base: string): CliFailure {
  return new CliFailure(`not logged in: run tessera user login (server ${base})`)
}

/** TESSERA_URL (default http://localhost:8000) as a base URL without a trailing slash. */
export function serverUrl(env: NodeJS.ProcessEnv = process.env): string {
  const raw =
    env.TESSERA_URL === undefined || env.TESSERA_URL === '' ? DEFAULT_TESSERA_URL : env.TESSERA_URL
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new CliFailure(
      'TESSERA_URL must be an http:// or https:// URL, such as http://localhost:8000',
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliFailure(`TESSERA_URL must be an http:// or https:// URL, not ${url.protocol}`)
  }
  if (url.username !== '' || url.password !== '') {
    throw new CliFailure('TESSERA_URL must not contain a user name or password')
  }
  if (url.search !== '' || url.hash !== '') {
    throw new CliFailure('TESSERA_URL must not have a query or fragment')
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}

/**
 * One request to the server. Network failures and answers that are not Tessera's throw a
 * CliFailure naming TESSERA_URL; problem+json answers come back as `ok: false`. Redirects are
 * not followed: the body may hold a password.
 */
async function request(
  base: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  options: { json?: unknown; token?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT }
  if (options.json !== undefined) headers['content-type'] = 'application/json'
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  let res: Response
  try {
    res = await fetch(base + path, {
      method,
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
    })
  } catch (error) {
    throw new CliFailure(`cannot reach Tessera at ${base} (TESSERA_URL): ${networkReason(error)}`)
  }
  const text = await res.text().catch(() => '')
  if (res.status >= 300 && res.status < 400) {
    throw new CliFailure(
      `${base} (TESSERA_URL) answered with a redirect (HTTP ${res.status}); ` +
        "set TESSERA_URL to the server's own address",
    )
  }
  let body: unknown
  try {
    body = text === '' ? undefined : JSON.parse(text)
  } catch {
    body = undefined
  }
  if (res.ok) {
    if (res.status !== 204 && body === undefined) {
      throw new CliFailure(
        `${base} (TESSERA_URL) answered HTTP ${res.status} without JSON: is it a Tessera server?`,
      )
    }
    return { ok: true, status: res.status, body }
  }
  const problem = body as { code?: unknown; detail?: unknown } | undefined
  if (typeof problem?.code !== 'string') {
    throw new CliFailure(
      `${base} (TESSERA_URL) answered HTTP ${res.status}: is it a Tessera server?`,
    )
  }
  const detail = typeof problem.detail === 'string' ? problem.detail : `HTTP ${res.status}`
  return {
    ok: false,
    status: res.status,
    problem: new ProblemError(res.status, problem.code, detail),
    body,
  }
}

function networkReason(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`
  }
  const cause =
    error instanceof Error
      ? (error.cause as { code?: unknown; message?: unknown } | undefined)
      : undefined
  if (typeof cause?.message === 'string' && cause.message !== '') return cause.message
  if (typeof cause?.code === 'string') return cause.code
  return error instanceof Error ? error.message : String(error)
}

/** The stored entry for a token pair answer; expiry times count from before the request left. */
function credentialsFrom(base: string, body: unknown, requestedAt: number): StoredCredentials {
  const pair = body as Partial<
    Record<'access_token' | 'refresh_token' | 'expires_in' | 'refresh_expires_in', unknown>
  >
  if (
    typeof pair?.access_token !== 'string' ||
    typeof pair.refresh_token !== 'string' ||
    typeof pair.expires_in !== 'number' ||
    typeof pair.refresh_expires_in !== 'number'
  ) {
    throw new CliFailure(
      `${base} (TESSERA_URL) did not answer with a token pair: is it a Tessera server?`,
    )
  }
  return {
    url: base,
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    access_expires_at: new Date(requestedAt + pair.expires_in * 1000).toISOString(),
    refresh_expires_at: new Date(requestedAt + pair.refresh_expires_in * 1000).toISOString(),
  }
}

function expiresWithin(timestamp: string, marginMs: number): boolean {
  const at = Date.parse(timestamp)
  return Number.isNaN(at) || at - Date.now() <= marginMs
}

/**
 * Swaps the stored refresh token for a new pair, under the store's cross-process lock, so that
 * commands sharing one credentials file refresh once (README, "Command line"). The file is read
 * again once the lock is held: if another command stored a new pair meanwhile that is not about
 * to expire, it is used as it is and nothing reaches the server. The old refresh token is spent
 * the moment the server answers, so the new pair is written to disk (atomically, still under the
 * lock) before anything uses it. A refresh the server refuses ends the stored session.
 */
async function refresh(
  base: string,
  store: TokenStore,
  stale: StoredCredentials,
): Promise<StoredCredentials> {
  return store.locked(async (tx) => {
    const current = await tx.get(base)
    if (current === undefined) throw notLoggedIn(base)
    if (
      current.refresh_token !== stale.refresh_token &&
      !expiresWithin(current.access_expires_at, REFRESH_MARGIN_MS)
    ) {
      return current
    }
    if (expiresWithin(current.refresh_expires_at, 0)) return endSession(tx, base)
    const requestedAt = Date.now()
    const answer = await request(base, 'POST', '/v1/user/auth/refresh', {
      json: { refresh_token: current.refresh_token },
    })
    if (!answer.ok) {
      if (SESSION_OVER.has(answer.problem.code)) return endSession(tx, base)
      throw answer.problem
    }
    const next = credentialsFrom(base, answer.body, requestedAt)
    await tx.put(next)
    return next
  })
}

async function endSession(tx: Transaction, base: string): Promise<never> {
  await tx.remove(base)
  throw notLoggedIn(base)
}

interface UserBody {
  id?: unknown
  email?: unknown
  display_name?: unknown
  account_type?: unknown
  verified?: unknown
  created_at?: unknown
  role?: unknown
  identities?: Array<{ provider?: unknown; email?: unknown }>
}

function printUser(io: CliIo, body: unknown): void {
  const user = (body ?? {}) as UserBody
  const rows: Array<[string, unknown]> = [
    ['email', user.email],
    ['id', user.id],
    [
      'display_name',
      user.display_name === null || user.display_name === '' ? '-' : user.display_name,
    ],
    ['account_type', user.account_type],
    ['verified', user.verified === true ? 'yes' : user.verified === false ? 'no' : user.verified],
    ['created_at', user.created_at],
  ]
  if (user.role !== undefined) rows.push(['role', user.role])
  if (Array.isArray(user.identities)) {
    rows.push([
      'identities',
      user.identities.length === 0
        ? '-'
        : user.identities
            .map((i) =>
              i.email ? `${String(i.provider)} (${String(i.email)})` : String(i.provider),
            )
            .join(', '),
    ])
  }
  for (const [name, value] of rows) printLine(io, `${`${name}:`.padEnd(14)}${String(value)}`)
}

async function register(io: CliIo, base: string, values: ClientValues): Promise<void> {
  const email = requireEmail(values)
  const password = await readSecret(io, 'Password: ')
  if (io.stdin.isTTY === true && (await readSecret(io, 'Repeat password: ')) !== password) {
    throw new CliFailure('the passwords do not match')
  }
  const body = expectOk(
    await request(base, 'POST', '/v1/user/auth/register', {
      json: {
        email,
        password,
        ...(values['display-name'] === undefined ? {} : { display_name: values['display-name'] }),
      },
    }),
  )
  printUser(io, body)
}

async function login(
  io: CliIo,
  base: string,
  store: TokenStore,
  values: ClientValues,
): Promise<void> {
  const method = chooseLoginMethod(values, io.env)
  let obtained: ObtainedTokens
  if (method === 'password') {
    obtained = await passwordLogin(io, base, values.email!)
  } else {
    obtained = await cancellableOnInterrupt(async (signal) => {
      if (method === 'browser') {
        const tokens = await browserLogin(io, base, values.provider, signal)
        if (tokens !== undefined) return tokens
        printError(io, 'Logging in with a code instead.')
      }
      return deviceLogin(io, base, signal)
    })
  }
  const entry = credentialsFrom(base, obtained.body, obtained.requestedAt)
  const previous = await store.locked(async (tx) => {
    const old = await tx.get(base)
    await tx.put(entry)
    return old
  })
  // A session replaced by this login is ended on the server too (best effort: it is no longer
  // stored).
  if (previous !== undefined && previous.refresh_token !== entry.refresh_token) {
    await request(base, 'POST', '/v1/user/auth/logout', {
      json: { refresh_token: previous.refresh_token },
    }).catch(() => undefined)
  }
  const me = await request(base, 'GET', '/v1/user/me', { token: entry.access_token })
  const email = me.ok ? (me.body as UserBody).email : values.email
  printLine(io, `Logged in to ${base} as ${String(email ?? 'a Tessera account')}`)
}

/**
 * `--password`: the password, and for an account with a second factor (`mfa_required`; README,
 * "Second factors") a code from the authenticator app or a recovery code, read the same way.
 */
async function passwordLogin(io: CliIo, base: string, email: string): Promise<ObtainedTokens> {
  const reader = secretReader(io)
  try {
    const password = await reader.read('Password: ')
    let requestedAt = Date.now()
    let answer = await request(base, 'POST', '/v1/user/auth/login', { json: { email, password } })
    if (!answer.ok && answer.problem.code === 'mfa_required') {
      const ticket = (answer.body as { mfa_ticket?: unknown } | undefined)?.mfa_ticket
      const code = (
        await reader.read('Code from your authenticator app, or a recovery code: ')
      ).trim()
      const factor = /^[\d ]+$/.test(code) ? { totp_code: code } : { recovery_code: code }
      requestedAt = Date.now()
      answer = await request(base, 'POST', '/v1/user/auth/mfa', {
        json: { mfa_ticket: ticket, ...factor },
      })
    }
    return { body: expectOk(answer), requestedAt }
  } finally {
    reader.close()
  }
}

async function storedLogin(base: string, store: TokenStore): Promise<AuthorizedRequest> {
  const stored = await store.get(base)
  if (stored === undefined) throw notLoggedIn(base)
  let entry = stored
  return async (method, path, json) => {
    let refreshed = false
    if (expiresWithin(entry.access_expires_at, REFRESH_MARGIN_MS)) {
      entry = await refresh(base, store, entry)
      refreshed = true
    }
    const send = () => request(base, method, path, { token: entry.access_token, json })
    let answer = await send()
    if (
      !answer.ok &&
      answer.status === 401 &&
      answer.problem.code !== 'reauthentication_required' &&
      !refreshed
    ) {
      entry = await refresh(base, store, entry)
      answer = await send()
    }
    return answer
  }
}

async function whoami(io: CliIo, base: string, store: TokenStore): Promise<void> {
  const call = await storedLogin(base, store)
  printUser(io, expectOk(await call('GET', '/v1/user/me')))
}

async function logout(io: CliIo, base: string, store: TokenStore): Promise<void> {
  const entry = await store.get(base)
  if (entry === undefined) {
    printLine(io, `Not logged in to ${base}`)
    return
  }
  const answer = await request(base, 'POST', '/v1/user/auth/logout', {
    json: { refresh_token: entry.refresh_token },
  })
  // Anything but a refusal of the token itself keeps the entry, so the logout can be retried.
  if (!answer.ok && answer.status !== 400 && answer.status !== 401) throw answer.problem
  await store.locked((tx) => tx.remove(base))
  printLine(io, `Logged out of ${base}`)
}

export interface ClientValues extends LoginOptions, Partial<TokenValues> {
  'display-name'?: string | undefined
}

function requireEmail(values: ClientValues): string {
  if (values.email === undefined || values.email.trim() === '')
    throw new CliFailure('--email is required', 2)
  return values.email
}

/**
 * Runs one client command and answers its exit code: 0, 1 for a failure (printed to stderr as
 * `code: detail` for server errors), 2 for a usage error (`usage` is printed after it).
 */
export async function runClientCommand(
  command: ClientCommand,
  values: ClientValues,
  usage: string,
  io: CliIo,
): Promise<number> {
  try {
    const base = serverUrl(io.env)
    const store = TokenStore.fromEnv(io.env)
    switch (command) {
      case 'user register':
        await register(io, base, values)
        break
      case 'user login':
        await login(io, base, store, values)
        break
      case 'user whoami':
        await whoami(io, base, store)
        break
      case 'user verify':
        await verifyAcademic(io, await storedLogin(base, store))
        break
      case 'user logout':
        await logout(io, base, store)
        break
      case 'token create':
      case 'token list':
      case 'token revoke':
      case 'token mint':
        await runTokenCommand(
          command,
          { ...values, args: values.args ?? [] },
          io,
          await storedLogin(base, store),
        )
        break
    }
    return 0
  } catch (error) {
    if (error instanceof CliFailure) {
      printError(io, error.exitCode === 2 ? `${error.message}\n\n${usage}` : error.message)
      return error.exitCode
    }
    if (error instanceof TokenStoreError) {
      printError(io, error.message)
      return 1
    }
    throw error
  }
}
