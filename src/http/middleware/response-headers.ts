import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { Context } from 'hono'
import type { AppEnv } from '../env.js'

/**
 * The headers every response carries unless its route sets its own value of the same name: the
 * security headers (what Hono's `secureHeaders` sends, with no framing and a `default-src 'none'`
 * policy; only /docs and the pages set their own policy) and `Cache-Control: no-store`, since
 * responses carry tokens and personal data and nothing is cacheable unless a route says so.
 */
export const RESPONSE_HEADER_BLOCK: Readonly<Record<string, string>> = Object.freeze({
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Origin-Agent-Cluster': '?1',
  'Referrer-Policy': 'no-referrer',
  'Strict-Transport-Security': 'max-age=15552000; includeSubDomains',
  'X-Content-Type-Options': 'nosniff',
  'X-DNS-Prefetch-Control': 'off',
  'X-Download-Options': 'noopen',
  'X-Frame-Options': 'DENY',
  'X-Permitted-Cross-Domain-Policies': 'none',
  'X-XSS-Protection': '0',
  'Cache-Control': 'no-store',
})

const BLOCK_ENTRIES = Object.entries(RESPONSE_HEADER_BLOCK)
const REQUEST_ID = /^[\w\-=]{1,128}$/

/**
 * Sets the request id (the client's `X-Request-Id` when it is a plain token of at most 128
 * characters, else a new UUID), to be put with `RESPONSE_HEADER_BLOCK` on every response: the
 * handlers' answers, the problem responses of the error and not-found handlers and of the body
 * limit, alike. Called by the app's one per-request middleware (http/app.ts) before the handler.
 *
 * On Node (the server, `@hono/node-server`) the block goes on the `ServerResponse` here, before the
 * app answers: Node sends those headers with whatever the response then writes, a route's own
 * value of the same name replacing the block's, and the answer is `true`. Reading or changing
 * `c.res.headers` after the handler instead would turn every response into a full web `Response`
 * with a `Headers` object (about half the cost of a small request, docs/performance.md). Without
 * a Node response (a bare `app.request()`) the answer is `false`, and `finishResponseHeaders`
 * adds the block to the answer afterwards, with the same precedence.
 */
export function beginResponseHeaders(c: Context<AppEnv>): boolean {
  const env = c.env as { outgoing?: ServerResponse; incoming?: { headers: NodeHeaders } }
  const given =
    env?.incoming !== undefined
      ? env.incoming.headers['x-request-id']
      : c.req.header('x-request-id')
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
  c.set('requestId', id)
  const outgoing = env?.outgoing
  if (outgoing === undefined) return false
  for (const [name, value] of BLOCK_ENTRIES) outgoing.setHeader(name, value)
  outgoing.setHeader('X-Request-Id', id)
  return true
}

/** The block and the request id on the answer itself, where `beginResponseHeaders` could not. */
export function finishResponseHeaders(c: Context<AppEnv>): void {
  const headers = c.res.headers
  for (const [name, value] of BLOCK_ENTRIES) if (!headers.has(name)) headers.set(name, value)
  headers.set('X-Request-Id', c.get('requestId'))
}

type NodeHeaders = Record<string, string | string[] | undefined>
