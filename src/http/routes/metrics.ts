import { Hono } from 'hono'
import { serviceSecretMatches } from '../../accounts/service-secret.js'
import { TesseraError } from '../../errors.js'
import type { AppEnv } from '../env.js'

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i

/**
 * `GET /metrics`: Prometheus text exposition of this instance's registry. Open on the listen
 * address unless METRICS_TOKEN is set; then it takes `Authorization: Bearer <METRICS_TOKEN>`,
 * compared in constant time.
 */
export const metricsRoutes = new Hono<AppEnv>().get('/metrics', async (c) => {
  const t = c.get('tessera')
  const token = t.config.metricsToken
  if (token !== undefined) {
    const presented = BEARER.exec(c.req.header('authorization') ?? '')?.[1]
    if (!serviceSecretMatches(token, presented)) {
      throw new TesseraError(
        'unauthorized',
        'GET /metrics requires Authorization: Bearer <METRICS_TOKEN>',
      )
    }
  }
  const { registry } = t.metrics
  const body = await registry.metrics()
  c.header('Content-Type', registry.contentType)
  return c.body(body)
})
