import type { IncomingMessage } from 'node:http'
import type { Context } from 'hono'

/**
 * A request header (`name` in lower case) as `c.req.header(name)` gives it, read from Node's
 * parsed headers when the app runs on Node: `c.req.header()` makes @hono/node-server build a web
 * `Headers` object of the whole request first, which the hot routes need not pay for
 * (docs/performance.md). Repeated headers are joined with ", " by both.
 */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
  if (incoming === undefined) return c.req.header(name)
  // `headersDistinct`, not `headers`: the latter keeps only the first of some repeated headers
  // (Authorization among them) where a web `Headers` joins them all, which is what routes check.
  return incoming.headersDistinct[name]?.join(', ')
}
