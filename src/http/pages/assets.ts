import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Context, Hono } from 'hono'
import type { AppEnv } from '../env.js'
import { projectRoot } from '../project-root.js'

const version = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12)

/** The pages' one stylesheet, a file of the repository (`assets/tessera.css`), read at start. */
const STYLESHEET = readFileSync(join(projectRoot(), 'assets', 'tessera.css'), 'utf8')
const STYLESHEET_VERSION = version(STYLESHEET)

/**
 * The pages' one script (README, "Passkeys"): @simplewebauthn/browser's bundle as installed,
 * then Tessera's own `assets/passkeys.js`, in one file served by Tessera itself (never a CDN).
 */
const SCRIPT = [
  readFileSync(
    join(
      projectRoot(),
      'node_modules',
      '@simplewebauthn',
      'browser',
      'dist',
      'bundle',
      'index.umd.min.js',
    ),
    'utf8',
  ),
  readFileSync(join(projectRoot(), 'assets', 'passkeys.js'), 'utf8'),
].join('\n')
const SCRIPT_VERSION = version(SCRIPT)

/**
 * The URLs pages link to: `?v=` names this version of the file, so a browser may keep it a year
 * and still fetches a changed one at once after an upgrade.
 */
export const STYLESHEET_URL = `/assets/tessera.css?v=${STYLESHEET_VERSION}`
export const SCRIPT_URL = `/assets/passkeys.js?v=${SCRIPT_VERSION}`

function serve(c: Context<AppEnv>, type: string, body: string, current: string) {
  c.header('Content-Type', type)
  c.header(
    'Cache-Control',
    c.req.query('v') === current ? 'public, max-age=31536000, immutable' : 'public, max-age=300',
  )
  return c.body(body)
}

export const assetRoutes = new Hono<AppEnv>()
  .get('/assets/tessera.css', (c) =>
    serve(c, 'text/css; charset=utf-8', STYLESHEET, STYLESHEET_VERSION),
  )
  .get('/assets/passkeys.js', (c) =>
    serve(c, 'text/javascript; charset=utf-8', SCRIPT, SCRIPT_VERSION),
  )
