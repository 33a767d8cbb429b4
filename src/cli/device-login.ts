import type * as OAuth from 'oauth4webapi'
import { sleep } from './cancel.js'
import { CliFailure } from './failure.js'
import { type CliIo, printError } from './io.js'

/** The CLI's public client id (src/device/clients.ts on the server). */
export const CLI_CLIENT_ID = 'tessera-cli'
/** Polls leave this much later than the interval, so network jitter never makes one too early. */
const POLL_MARGIN_MS = 250
/** RFC 8628 §3.5: `slow_down` adds 5 s to the interval, for this and every later poll. */
const SLOW_DOWN_STEP_SECONDS = 5

/** A token endpoint answer and when its request left (expiry times count from then). */
export interface ObtainedTokens {
  body: unknown
  requestedAt: number
}

function isTerminal(stream: NodeJS.WritableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true
}

/** The server's own message of an OAuth error (Tessera's `code` and `detail` are in it too). */
function describe(error: OAuth.ResponseBodyError): string {
  const { code, detail } = error.cause as { code?: unknown; detail?: unknown }
  const what = typeof code === 'string' ? code : error.error
  return `${what}: ${typeof detail === 'string' ? detail : (error.error_description ?? '')}`
}

/**
 * A device login (RFC 8628; README, "Command line"), through oauth4webapi: asks the server for a
 * code, prints where to enter it (URL, code and a QR code for a phone), and polls the token
 * endpoint at the server's interval, slower after each `slow_down`, until the user approves or
 * denies, the code expires, or `signal` aborts (Ctrl-C).
 */
export async function deviceLogin(
  io: CliIo,
  base: string,
  signal: AbortSignal,
): Promise<ObtainedTokens> {
  const oauth = await import('oauth4webapi')
  const as: OAuth.AuthorizationServer = {
    issuer: base,
    device_authorization_endpoint: `${base}/v1/oauth/device_authorization`,
    token_endpoint: `${base}/v1/oauth/token`,
  }
  const client: OAuth.Client = { client_id: CLI_CLIENT_ID }
  const options = {
    // TESSERA_URL may be plain http on a laptop or behind a local proxy; the user chose it.
    [oauth.allowInsecureRequests]: base.startsWith('http://'),
    headers: { 'user-agent': CLI_CLIENT_ID },
    signal,
  }
  const notTessera = (error: unknown) =>
    new CliFailure(`${base} (TESSERA_URL) did not answer as a Tessera server: ${String(error)}`)
  const unreachable = (error: unknown) =>
    new CliFailure(`cannot reach Tessera at ${base} (TESSERA_URL): ${reason(error)}`)

  let started: OAuth.DeviceAuthorizationResponse
  try {
    const response = await oauth.deviceAuthorizationRequest(as, client, oauth.None(), {}, options)
    started = await oauth.processDeviceAuthorizationResponse(as, client, response)
  } catch (error) {
    if (signal.aborted) throw error
    if (error instanceof oauth.ResponseBodyError) throw new CliFailure(describe(error))
    if (error instanceof oauth.OperationProcessingError) throw notTessera(error)
    throw unreachable(error)
  }
  await printPrompt(io, started)

  let interval = started.interval ?? 5
  const deadline = Date.now() + started.expires_in * 1000
  const progress = showProgress(io, deadline)
  try {
    for (;;) {
      await sleep(interval * 1000 + POLL_MARGIN_MS, signal)
      if (Date.now() >= deadline) throw expired()
      const requestedAt = Date.now()
      let response: Response
      try {
        response = await oauth.deviceCodeGrantRequest(
          as,
          client,
          oauth.None(),
          started.device_code,
          options,
        )
      } catch (error) {
        if (signal.aborted) throw error
        // A network failure: the code is still good until it expires, so keep polling.
        progress.note(`cannot reach ${base} (${reason(error)}); still trying`)
        continue
      }
      try {
        const body = await oauth.processDeviceCodeResponse(as, client, response)
        return { body, requestedAt }
      } catch (error) {
        if (error instanceof oauth.ResponseBodyError) {
          switch (error.error) {
            case 'authorization_pending':
            case 'temporarily_unavailable':
              continue
            case 'slow_down':
              interval += SLOW_DOWN_STEP_SECONDS
              progress.note(`the server asked to poll more slowly: every ${interval} s now`)
              continue
            case 'access_denied':
              throw new CliFailure(`the login was denied (${describe(error)})`)
            case 'expired_token':
              throw expired()
          }
          throw new CliFailure(describe(error))
        }
        // 5xx: the server (or its database) is briefly unavailable; the code is still good.
        if (response.status >= 500) continue
        throw notTessera(error)
      }
    }
  } finally {
    progress.stop()
  }
}

function expired(): CliFailure {
  return new CliFailure('the code expired before it was approved; run tessera user login again')
}

function reason(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { message?: unknown } | undefined) : null
  if (typeof cause?.message === 'string' && cause.message !== '') return cause.message
  return error instanceof Error ? error.message : String(error)
}

/** What the person needs, on stderr (stdout stays for the result): URL, code, QR code. */
async function printPrompt(io: CliIo, started: OAuth.DeviceAuthorizationResponse): Promise<void> {
  const complete = started.verification_uri_complete
  printError(io, `To log in, open ${started.verification_uri}`)
  printError(io, `and enter the code ${started.user_code}`)
  if (complete !== undefined) {
    const { default: qrcode } = await import('qrcode-terminal')
    printError(io, `or scan this with a phone (it opens ${complete}):`)
    qrcode.generate(complete, { small: true }, (code) => printError(io, code))
  }
}

interface Progress {
  /** A line worth telling while waiting (printed once, whatever the terminal). */
  note(message: string): void
  stop(): void
}

/**
 * While polling: on a terminal, one line rewritten each second with the time left; elsewhere
 * (a log, a test) one line saying what is awaited.
 */
function showProgress(io: CliIo, deadline: number): Progress {
  const tty = isTerminal(io.stderr)
  const line = () => {
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000))
    const time = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`
    return `Waiting for the approval (the code expires in ${time}; Ctrl-C to cancel)`
  }
  if (!tty) {
    printError(io, 'Waiting for the approval (Ctrl-C to cancel)...')
    return { note: (message) => printError(io, message), stop: () => {} }
  }
  io.stderr.write(`\r${line()}`)
  const timer = setInterval(() => io.stderr.write(`\r${line()}`), 1000)
  return {
    note(message) {
      io.stderr.write(`\r\x1b[2K${message}\n${line()}`)
    },
    stop() {
      clearInterval(timer)
      io.stderr.write('\r\x1b[2K')
    },
  }
}
