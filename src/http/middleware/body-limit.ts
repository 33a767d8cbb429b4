import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit as streamingBodyLimit } from 'hono/body-limit'

/**
 * Caps request bodies at `maxSize` bytes.
 *
 * Hono's `bodyLimit` starts by reading `c.req.raw.body`, which makes @hono/node-server build a
 * full web `Request` with a `ReadableStream` over the socket for every request, GETs included;
 * on a refresh that is about a tenth of the request's cost. A declared `Content-Length` without
 * `Transfer-Encoding` settles the question by itself (Node's parser never delivers more bytes
 * than declared and rejects malformed lengths), and the body can then be read through the
 * adapter's direct path. Everything else (chunked bodies) goes through Hono's counting reader.
 */
const DECIMAL = /^\d{1,15}$/

export function bodyLimit(maxSize: number, onError: (c: Context) => Response): MiddlewareHandler {
  const streaming = streamingBodyLimit({ maxSize, onError })
  return async (c, next) => {
    const method = c.req.method
    if (method === 'GET' || method === 'HEAD') return next()
    const length = c.req.header('content-length')
    // Anything but one plain decimal length (never seen from Node's parser) is counted instead.
    if (
      length !== undefined &&
      DECIMAL.test(length) &&
      c.req.header('transfer-encoding') === undefined
    ) {
      return Number(length) > maxSize ? onError(c) : next()
    }
    return streaming(c, next)
  }
}
