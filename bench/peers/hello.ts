/**
 * The hello-world baseline of `npm run bench`: Hono on @hono/node-server answering one JSON
 * object, in its own process. What a request costs with no middleware at all, so the ratio of
 * `GET /health` to it is what Tessera's per-request middleware costs (docs/performance.md).
 * Prints `{"url": ...}` on stdout once it listens.
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'

const app = new Hono().get('/', (c) => c.json({ status: 'ok' }))
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${info.port}` })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
