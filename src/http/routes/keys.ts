import { Hono } from 'hono'
import { publishedKeys } from '../../keys/signing-keys.js'
import type { AppEnv } from '../env.js'

/** `GET /v1/keys`: the PASERK public keys verifiers must accept, cacheable for KEYS_MAX_AGE. */
export const keyRoutes = new Hono<AppEnv>().get('/', async (c) => {
  const t = c.get('tessera')
  c.header('Cache-Control', `public, max-age=${t.config.keysMaxAge}`)
  return c.json({ keys: await publishedKeys(t) })
})
