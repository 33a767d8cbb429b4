import type { ServerResponse } from 'node:http'
import type { Context } from 'hono'

/**
 * Sets a header of the answer the handler is about to return, the way the header block is set
 * (middleware/response-headers.ts): on Node's response, so that a small answer stays a light one
 * that @hono/node-server writes directly, instead of a web `Response` with a `Headers` object to
 * convert (docs/performance.md, "`GET /v1/authz`"). Without a Node response (`app.request()`),
 * `c.header`. Only right before a success answer: an error thrown after it would carry the header.
 */
export function setAnswerHeader(c: Context, name: string, value: string): void {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing
  if (outgoing === undefined) c.header(name, value)
  else outgoing.setHeader(name, value)
}
