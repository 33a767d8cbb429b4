import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { routePath } from 'hono/route'
import { TesseraError } from '../errors.js'
import type { Tessera } from '../tessera.js'
import type { AppEnv } from './env.js'
import { bodyLimit } from './middleware/body-limit.js'
import { corsBefore } from './middleware/cors.js'
import { oauthErrorBodies } from './middleware/oauth-errors.js'
import { beginResponseHeaders, finishResponseHeaders } from './middleware/response-headers.js'
import { accountRoutes } from './pages/account-routes.js'
import { assetRoutes } from './pages/assets.js'
import { deviceRoutes } from './pages/device-routes.js'
import { emailPageRoutes } from './pages/email-routes.js'
import { passwordResetPages } from './pages/password-reset-routes.js'
import { signInRoutes } from './pages/sign-in-routes.js'
import { handleError, problemResponse } from './problem.js'
import { adminRoutes } from './routes/admin.js'
import { archiveRoutes } from './routes/archive.js'
import { docsRoutes } from './routes/docs.js'
import { emailRoutes } from './routes/email.js'
import { federationRoutes } from './routes/federation.js'
import { healthRoutes } from './routes/health.js'
import { keyRoutes } from './routes/keys.js'
import { linkRoutes } from './routes/link.js'
import { metricsRoutes } from './routes/metrics.js'
import { mfaRoutes } from './routes/mfa.js'
import { oauthRoutes } from './routes/oauth.js'
import { passkeyRoutes } from './routes/passkeys.js'
import { passwordResetRoutes } from './routes/password-reset.js'
import { personalTokenRoutes } from './routes/personal-tokens.js'
import { revocationRoutes } from './routes/revocations.js'
import { serviceRoutes } from './routes/service.js'
import { authzRoutes, tokenRoutes } from './routes/token.js'
import { userRoutes } from './routes/user.js'

export const MAX_BODY_BYTES = 64 * 1024
/** Every method with a route that reads a body; no route reads one of any other method. */
const BODY_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

/** The whole HTTP surface: middleware, then one sub-app per area. */
export function createApp(tessera: Tessera): Hono<AppEnv> {
  const app = new Hono<AppEnv>()

  app.use(perRequest(tessera))
  // Before the body limit, so that its 413 gets the OAuth error members too.
  app.use('/v1/oauth/*', oauthErrorBodies)
  // Only the methods with a body: a GET or a HEAD then passes one layer fewer.
  app.on(
    BODY_METHODS,
    '/*',
    bodyLimit(MAX_BODY_BYTES, () =>
      problemResponse(
        new TesseraError('payload_too_large', 'Request bodies are limited to 64 KiB'),
      ),
    ),
  )

  app.route('/', healthRoutes)
  app.route('/', metricsRoutes)
  app.route('/v1/keys', keyRoutes)
  app.route('/v1/revocations', revocationRoutes)
  app.route('/v1/user', userRoutes)
  app.route('/v1/user', federationRoutes)
  app.route('/v1/user/email', emailRoutes)
  app.route('/v1/user', passwordResetRoutes)
  app.route('/v1/user', personalTokenRoutes)
  app.route('/v1/user', passkeyRoutes)
  app.route('/v1/user', mfaRoutes)
  app.route('/v1/admin', adminRoutes)
  app.route('/v1/token', tokenRoutes)
  app.route('/v1/authz', authzRoutes)
  app.route('/v1/oauth', oauthRoutes)
  app.route('/v1/service', serviceRoutes)
  app.route('/api/v1/auth', archiveRoutes)
  app.route('/', docsRoutes)
  app.route('/link', linkRoutes)
  // Tessera's own pages (README, "Pages").
  app.route('/', signInRoutes)
  app.route('/', accountRoutes)
  app.route('/', emailPageRoutes)
  app.route('/', deviceRoutes)
  app.route('/', passwordResetPages)
  app.route('/', assetRoutes)

  app.notFound(() => problemResponse(new TesseraError('not_found', 'No such route')))
  app.onError(handleError)
  return app
}

/**
 * The request path as logged: a link ticket in the path (`/link/<ticket>`, README "Linking from
 * an API client") is a credential for five minutes, so it is masked.
 */
export function loggedPath(path: string): string {
  return path.replace(/^\/link\/(?!done$)[^/]+/, '/link/<ticket>')
}

/**
 * The one middleware every request passes, as one layer rather than four (each layer is a closure,
 * a promise and a turn of Hono's dispatch on every request, docs/performance.md): it sets
 * `tessera` for the handlers, the request id and the response header block
 * (middleware/response-headers.ts), answers CORS preflights and adds CORS headers
 * (middleware/cors.ts), then makes one latency observation and one log line.
 *
 * The route label is the template of the last route the request matched
 * (`/v1/user/sessions/:id`, also when a middleware such as the body limit answered before the
 * handler; `/*` when no route matched), never the raw path, so the number of series stays
 * bounded whatever clients send.
 */
function perRequest(tessera: Tessera): MiddlewareHandler<AppEnv> {
  const { logger, metrics } = tessera
  return async (c, next) => {
    c.set('tessera', tessera)
    const started = performance.now()
    const preset = beginResponseHeaders(c)
    const cors = corsBefore(c)
    if (cors instanceof Response) {
      c.res = cors
    } else {
      // Errors of the layers inside are answered there (the app's error handler), so this
      // always goes on to the headers and the observation.
      await next()
      cors?.(c)
    }
    if (!preset) finishResponseHeaders(c)
    observe(c, logger, metrics, performance.now() - started)
  }
}

function observe(
  c: Context<AppEnv>,
  logger: Tessera['logger'],
  metrics: Tessera['metrics'],
  elapsed: number,
): void {
  const route = routePath(c, -1)
  const status = c.res.status
  metrics.httpRequestDuration.observe({ method: c.req.method, route, status }, elapsed / 1000)
  if (logger.isLevelEnabled('info')) {
    logger.info({
      requestId: c.get('requestId'),
      method: c.req.method,
      // The path only: query strings could carry OAuth codes.
      path: loggedPath(c.req.path),
      route,
      status,
      ms: Math.round(elapsed * 10) / 10,
    })
  }
}
