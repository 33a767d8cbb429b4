import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import * as v from 'valibot'
import { pullFeed } from '../../revocations/feed.js'
import { revocationStream } from '../../revocations/stream.js'
import { validate } from '../body.js'
import type { AppEnv } from '../env.js'

/** How long a pulled page may be cached: short, a revocation should travel in about a second. */
const PULL_MAX_AGE_SECONDS = 1
/** What an EventSource waits before reconnecting after the stream ends. */
const RECONNECT_MS = 1000

const cursor = v.pipe(
  v.string(),
  v.regex(/^\d{1,16}$/, 'must be a whole number'),
  v.transform(Number),
  v.maxValue(Number.MAX_SAFE_INTEGER, 'is too large'),
)
const PullQuery = v.object({ after: v.optional(cursor, '0') })
const StreamStart = v.object({
  'Last-Event-ID': v.optional(cursor),
  after: v.optional(cursor, '0'),
})

/**
 * The revocation feed (docs/revocation.md): public, like `/v1/keys`, because it names sessions and
 * users only by hashes of their ids and every document is signed.
 */
export const revocationRoutes = new Hono<AppEnv>()
  .get('/', async (c) => {
    const { after } = validate(PullQuery, { after: c.req.query('after') })
    const document = await pullFeed(c.get('tessera'), after)
    c.header('Cache-Control', `public, max-age=${PULL_MAX_AGE_SECONDS}`)
    return c.json({ document })
  })
  .get('/stream', (c) => {
    const t = c.get('tessera')
    const start = validate(StreamStart, {
      'Last-Event-ID': c.req.header('last-event-id'),
      after: c.req.query('after'),
    })
    // An EventSource resumes with Last-Event-ID, which is newer than the URL's `after`.
    const after = start['Last-Event-ID'] ?? start.after
    const release = t.revocations.openStream()
    const aborted = new AbortController()
    const res = streamSSE(c, async (stream) => {
      stream.onAbort(() => aborted.abort())
      try {
        await stream.write(`retry: ${RECONNECT_MS}\n\n`)
        for await (const item of revocationStream(t, after, aborted.signal)) {
          if (stream.aborted) break
          if (item.kind === 'heartbeat') await stream.write(': heartbeat\n\n')
          else
            await stream.writeSSE({
              event: 'revocations',
              id: String(item.id),
              data: item.document,
            })
        }
      } catch (error) {
        // No key to sign with (the database is gone past the signer cache): the stream ends and
        // the client resumes from its last event once this replica can sign again.
        t.logger.warn(
          { message: error instanceof Error ? error.message : String(error) },
          'revocation stream ended by an error',
        )
      } finally {
        release()
      }
    })
    res.headers.set('Cache-Control', 'no-store')
    // nginx buffers proxied responses unless told not to, which would hold events back.
    res.headers.set('X-Accel-Buffering', 'no')
    return res
  })
