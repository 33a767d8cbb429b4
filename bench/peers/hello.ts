/**
 * The hello-world baseline of `npm run bench`: Hono on @hono/node-server answering one JSON
 * object, in its own process. What a request costs with no middleware at all, so the ratio of
 * `GET /health` to it is what Tessera's per-request middleware costs (docs/performance.md).
 * With `HELLO_HEADERS=tessera` it also sends Tessera's response headers (the security headers,
 * `Cache-Control`, a request id, `Vary`), set on the Node response as Tessera sets them: the
 * ratio to that one is what Tessera's code costs beyond the bytes of its headers. With
 * `HELLO_HEADERS=request-id` it sends one header only, a request id set the same way: the ratio of
 * that one to the bare hello is the most any server on Node's HTTP server that names its answers
 * can reach (docs/performance.md, "/health: the ceiling").
 * Prints `{"url": ...}` on stdout once it listens.
 */
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { RESPONSE_HEADER_BLOCK } from '../../src/http/middleware/response-headers.js'

const app = new Hono<{ Bindings: { outgoing: ServerResponse } }>()
const mode = process.env.HELLO_HEADERS
if (mode === 'tessera') {
  const entries = Object.entries(RESPONSE_HEADER_BLOCK)
  app.use(async (c, next) => {
    for (const [name, value] of entries) c.env.outgoing.setHeader(name, value)
    c.env.outgoing.setHeader('X-Request-Id', randomUUID())
    c.env.outgoing.setHeader('Vary', 'Origin')
    await next()
  })
} else if (mode === 'request-id') {
  app.use(async (c, next) => {
    c.env.outgoing.setHeader('X-Request-Id', randomUUID())
    await next()
  })
}
app.get('/', (c) => c.json({ status: 'ok' }))
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${info.port}` })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
