import { maxHeaderSize, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { type ServerType, serve } from '@hono/node-server'
import { resolvePendingMailRequests } from './accounts/mail-request-pass.js'
import { type Config, insecureIssuerWarning } from './config/index.js'
import { TesseraError } from './errors.js'
import { createApp } from './http/app.js'
import { problemBody } from './http/problem.js'
import { type MailSender, startMailSender } from './mail/sender.js'
import { createMailTransport } from './mail/transport.js'
import { startPruning } from './retention/prune.js'
import { startAnswerSweep } from './sessions/replay.js'
import { createTessera, type Tessera, type TesseraOptions } from './tessera.js'

export interface RunningServer {
  tessera: Tessera
  server: ServerType
  /** The base URL the server answers on (useful with PORT=0). */
  url: string
  /** The mail queue's sender of this process (README, "Mail"). */
  mail: MailSender
  close(): Promise<void>
}

/** Starts Tessera on `config.host:config.port` and resolves once it is listening. */
export async function startServer(
  config: Config,
  options: TesseraOptions = {},
): Promise<RunningServer> {
  const tessera = await createTessera(config, options)
  const insecure = insecureIssuerWarning(config.issuer)
  if (insecure !== undefined) tessera.logger.warn(insecure)
  try {
    await tessera.revocations.start()
  } catch (error) {
    await tessera.close()
    throw error
  }
  const app = createApp(tessera)
  const { server, port } = await new Promise<{ server: ServerType; port: number }>(
    (resolve, reject) => {
      const server = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) =>
        resolve({ server, port: info.port }),
      )
      server.once('error', reject)
      server.on('clientError', answerClientError)
    },
  ).catch(async (error: unknown) => {
    // The revocation log's listening connection would keep a process that cannot serve alive.
    await tessera.close()
    throw error
  })
  // The answers kept for the reuse interval are deleted once it is over (docs/refresh.md).
  const sweep = startAnswerSweep(tessera)
  // What is no longer needed is deleted, one replica at a time (README, "Storage and retention").
  const pruning = startPruning(
    { ...tessera, prunedRows: tessera.metrics.prunedRows },
    config.pruneInterval,
  )
  const mail = startMailSender({
    ...tessera,
    transport: createMailTransport(tessera),
    // Reset and verification requests are answered before their account's work, which is done
    // here, off the request path, so the answer's time does not tell whether the address has an
    // account (README, "Password reset").
    beforeEachPass: () => resolvePendingMailRequests(tessera),
    pollMs: options.mailPollMs,
  })
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host
  let closing: Promise<void> | undefined
  return {
    tessera,
    server,
    url: `http://${host}:${port}`,
    mail,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        // Open revocation streams would hold close() open: they end first.
        await tessera.revocations.close()
        // Idle keep-alive sockets would hold close() open.
        ;(server as { closeIdleConnections?: () => void }).closeIdleConnections?.()
        await closed
        await sweep.stop()
        await pruning.stop()
        await mail.stop()
        await tessera.close()
      })()
      return closing
    },
  }
}

/**
 * Requests node:http refuses before the app sees them (headers over its `maxHeaderSize`, 16 KiB
 * by default; a request line or header it cannot parse) would otherwise get Node's bare-text
 * answer: they get a problem
 * document like every other error (README "HTTP"), and the connection is closed, since the parser
 * cannot know where the next request would start.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // Nobody is listening for an answer: the client went away, or never finished its request.
  if (
    error.code === 'ECONNRESET' ||
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ||
    !socket.writable
  ) {
    socket.destroy()
    return
  }
  const problem =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new TesseraError('headers_too_large', `The request headers are over ${maxHeaderSize} bytes`)
      : new TesseraError('validation_failed', 'The request is not well-formed HTTP/1.1')
  const body = JSON.stringify(problemBody(problem))
  socket.end(
    [
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}`,
      'Content-Type: application/problem+json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Cache-Control: no-store',
      'X-Content-Type-Options: nosniff',
      'Connection: close',
      '',
      body,
    ].join('\r\n'),
  )
}
