import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Hono } from 'hono'
import type { AppEnv } from '../env.js'
import { projectRoot } from '../project-root.js'

/** The pages' one stylesheet, a file of the repository (`assets/tessera.css`), read at start. */
const STYLESHEET = readFileSync(join(projectRoot(), 'assets', 'tessera.css'), 'utf8')
const VERSION = createHash('sha256').update(STYLESHEET).digest('hex').slice(0, 12)

/**
 * The URL pages link to: `?v=` names this version of the file, so a browser may keep it a year
 * and still fetches a changed one at once after an upgrade.
 */
export const STYLESHEET_URL = `/assets/tessera.css?v=${VERSION}`

export const assetRoutes = new Hono<AppEnv>().get('/assets/tessera.css', (c) => {
  c.header('Content-Type', 'text/css; charset=utf-8')
  c.header(
    'Cache-Control',
    c.req.query('v') === VERSION ? 'public, max-age=31536000, immutable' : 'public, max-age=300',
  )
  return c.body(STYLESHEET)
})
