import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cancelled } from './cancel.js'
import type { ObtainedTokens } from './device-login.js'
import { CliFailure } from './failure.js'
import { type CliIo, printError } from './io.js'
import { openBrowser } from './open-browser.js'

/**
 * The loopback path the server always allows on any port (src/federation/loopback.ts):
 * `http://127.0.0.1:<port>/tessera/callback`.
 */
export const CALLBACK_PATH = '/tessera/callback'
/** How long the listener waits for the browser to come back. */
export const BROWSER_LOGIN_TIMEOUT_MS = 5 * 60_000
const REQUEST_TIMEOUT_MS = 30_000

const base64url = (bytes: Buffer) => bytes.toString('base64url')

/**
 * Where the browser starts: the provider's authorize (`--provider`), or the sign-in page, whose
 * chooser offers every method and sends the browser back with a one-time code as authorize
 * does. Both carry the CLI's PKCE challenge and `state` (README, "Federated login").
 */
export function startUrl(
  base: string,
  redirectUri: string,
  pkce: { challenge: string; state: string },
  provider: string | undefined,
): string {
  const query = new URLSearchParams({
    [provider === undefined ? 'return_to' : 'redirect_uri']: redirectUri,
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    state: pkce.state,
  })
  const path = provider === undefined ? '/login' : `/v1/user/authenticate/${provider}/authorize`
  return `${base}${path}?${query.toString()}`
}

/**
 * A browser login for a machine with a browser (RFC 8252 §7.3; README, "Command line"): a
 * listener on 127.0.0.1 at a port the OS picks, the system browser sent to Tessera with a PKCE
 * challenge and a `state`, and the one-time code that comes back exchanged with the verifier.
 * Undefined when no browser could be opened, or the server has no sign-in page and no provider
 * was named (the caller falls back to a device login). The
 * listener answers the browser with a short page and is closed whatever happens.
 */
export async function browserLogin(
  io: CliIo,
  base: string,
  provider: string | undefined,
  signal: AbortSignal,
): Promise<ObtainedTokens | undefined> {
  const verifier = base64url(randomBytes(32))
  const pkce = {
    challenge: base64url(createHash('sha256').update(verifier).digest()),
    state: base64url(randomBytes(16)),
  }
  let finish: (outcome: ObtainedTokens | Error) => void = () => {}
  const outcome = new Promise<ObtainedTokens | Error>((resolve) => {
    finish = resolve
  })
  const server = createServer((req, res) => {
    void answerCallback(req, res, { base, verifier, state: pkce.state, finish })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}${CALLBACK_PATH}`
  const onAbort = () => finish(cancelled())
  signal.addEventListener('abort', onAbort, { once: true })
  const timer = setTimeout(
    () =>
      finish(
        new CliFailure(
          `no answer from the browser within ${BROWSER_LOGIN_TIMEOUT_MS / 60_000} minutes; ` +
            'run tessera user login again (or use --device)',
        ),
      ),
    BROWSER_LOGIN_TIMEOUT_MS,
  )
  try {
    const url = startUrl(base, redirectUri, pkce, provider)
    if (provider === undefined && !(await hasSignInPage(base))) {
      printError(io, `${base} has no sign-in page (/login) to choose a provider on.`)
      return undefined
    }
    if (!(await openBrowser(url, io.env))) {
      printError(io, 'Could not open a browser.')
      return undefined
    }
    printError(io, 'Sign in in the browser window that opened; if none did, open:')
    printError(io, url)
    printError(io, 'Waiting for the browser (Ctrl-C to cancel)...')
    const result = await outcome
    if (result instanceof Error) throw result
    return result
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/**
 * Whether the server serves the sign-in page the chooser lives on (a server older than it answers
 * 404): the browser would otherwise show an error while the command waits for minutes.
 */
async function hasSignInPage(base: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}/login`, {
      redirect: 'manual',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
    await res.body?.cancel()
    return res.status !== 404
  } catch {
    return true // Unreachable: let the browser show why, as it would anyway.
  }
}

interface CallbackContext {
  base: string
  verifier: string
  state: string
  finish(outcome: ObtainedTokens | Error): void
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * One request to the listener. Only `GET /tessera/callback` carrying this login's `state`
 * counts: anything else (another page, a stale tab, a request forged by a web page that guessed
 * the port) is answered and ignored, so it can neither end nor hijack the login.
 */
async function answerCallback(
  req: IncomingMessage,
  res: ServerResponse,
  context: CallbackContext,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1')
  if (req.method !== 'GET' || url.pathname !== CALLBACK_PATH) {
    page(res, 404, 'Not found', 'This address is only for the tessera command’s sign-in.')
    return
  }
  const state = url.searchParams.get('state') ?? ''
  if (!sameSecret(state, context.state)) {
    page(res, 400, 'Not this sign-in', 'This answer is not for the sign-in the command started.')
    return
  }
  const error = url.searchParams.get('error')
  const code = url.searchParams.get('code')
  if (error !== null || code === null) {
    const what = error ?? 'no code'
    page(res, 400, 'Sign-in failed', `Tessera answered: ${what}. Return to the terminal.`)
    context.finish(new CliFailure(`the sign-in failed in the browser: ${what}`))
    return
  }
  try {
    const tokens = await exchange(context.base, code, context.verifier)
    page(res, 200, 'Signed in', 'The tessera command is logged in. You can close this window.')
    context.finish(tokens)
  } catch (failure) {
    page(res, 400, 'Sign-in failed', 'The login code was refused. Return to the terminal.')
    context.finish(failure instanceof Error ? failure : new Error(String(failure)))
  }
}

/** `POST /v1/user/auth/oauth/exchange`: the one-time code and this login's PKCE verifier. */
async function exchange(base: string, code: string, verifier: string): Promise<ObtainedTokens> {
  const requestedAt = Date.now()
  let res: Response
  try {
    res = await fetch(`${base}/v1/user/auth/oauth/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'tessera-cli' },
      body: JSON.stringify({ code, code_verifier: verifier }),
      redirect: 'manual',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    })
  } catch (error) {
    throw new CliFailure(`cannot reach Tessera at ${base} (TESSERA_URL): ${String(error)}`)
  }
  const body = (await res.json().catch(() => undefined)) as
    | { code?: unknown; detail?: unknown }
    | undefined
  if (res.status !== 200) {
    const what = typeof body?.code === 'string' ? `${body.code}: ${String(body.detail)}` : ''
    throw new CliFailure(`the login code was refused (HTTP ${res.status}) ${what}`.trim())
  }
  return { body, requestedAt }
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The short page the browser shows; it loads nothing and keeps the code out of referrers. */
function page(res: ServerResponse, status: number, title: string, message: string): void {
  const html =
    `<!doctype html><html lang="en"><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
    `<body style="font-family:sans-serif;margin:3em"><h1>${escapeHtml(title)}</h1>` +
    `<p>${escapeHtml(message)}</p></body></html>`
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    connection: 'close',
  })
  res.end(html)
}
