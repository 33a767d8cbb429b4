import { type Context, Hono } from 'hono'
import { TesseraError } from '../../errors.js'
import { servedOpenApi } from '../docs/openapi-document.js'
import { REFERENCE_PAGE, REFERENCE_POLICY } from '../docs/reference-page.js'
import { bundleFile, SCALAR_VERSION } from '../docs/scalar-bundle.js'
import type { AppEnv } from '../env.js'

const CACHE_CONTROL = 'public, max-age=300'
/** Versioned URLs never change content: a year, and no revalidation. */
const IMMUTABLE = 'public, max-age=31536000, immutable'

/**
 * Whether an Accept-Encoding header admits gzip (RFC 9110 §12.5.3): a `gzip` entry decides, else
 * a `*` entry; `q=0` means "not acceptable".
 */
function acceptsGzip(header: string | undefined): boolean {
  const weights = new Map<string, number>()
  for (const part of (header ?? '').split(',')) {
    const [coding = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase())
    const q = params.find((p) => p.startsWith('q='))
    weights.set(coding, q === undefined ? 1 : Number(q.slice(2)))
  }
  const weight = weights.get('gzip') ?? weights.get('*') ?? 0
  return weight > 0
}

/** `/docs/assets/<version>/<name>`: a file, or `chunks/` and a file, of safe characters only. */
const BUNDLE_PATH = /^\/docs\/assets\/([^/]+)\/((?:chunks\/)?[A-Za-z0-9._-]+\.js)$/

/** A file of the renderer's bundle; any other version or name is 404. */
async function serveBundleFile(c: Context<AppEnv>) {
  const [, version, name = ''] = BUNDLE_PATH.exec(c.req.path) ?? []
  const file = version === SCALAR_VERSION ? bundleFile(name) : undefined
  if (file === undefined) throw new TesseraError('not_found', 'No such file')
  c.header('Content-Type', 'text/javascript; charset=utf-8')
  c.header('Cache-Control', IMMUTABLE)
  // With Origin, which the CORS middleware would have added (middleware/cors.ts).
  c.header('Vary', 'Accept-Encoding, Origin')
  if (acceptsGzip(c.req.header('accept-encoding'))) {
    c.header('Content-Encoding', 'gzip')
    return c.body(new Uint8Array(await file.gzip()))
  }
  return c.body(new Uint8Array(await file.identity()))
}

/**
 * `GET /openapi.yaml` (the document, naming this server), `GET /docs` (rendered) and the
 * renderer's files under `/docs/assets/<version>/`, all from this process: nothing the page
 * needs comes from another origin (README, "Routes").
 */
export const docsRoutes = new Hono<AppEnv>()
  .get('/openapi.yaml', (c) => {
    c.header('Content-Type', 'application/yaml')
    c.header('Cache-Control', CACHE_CONTROL)
    return c.body(servedOpenApi(c.get('tessera').config.issuer))
  })
  .get('/docs', (c) => {
    c.header('Content-Security-Policy', REFERENCE_POLICY)
    c.header('Cache-Control', CACHE_CONTROL)
    return c.html(REFERENCE_PAGE)
  })
  // One route for both folders, matched by BUNDLE_PATH: a parameter beside a fixed segment at the
  // same depth (`:file` and `chunks/`) is a shape Hono's RegExpRouter refuses, and the app would
  // then route every request with its slower TrieRouter (docs/performance.md, "Routing").
  .get('/docs/assets/*', serveBundleFile)
