import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Context, Hono } from 'hono'
import type { AppEnv } from '../env.js'

/**
 * The project root: the nearest directory above this module that holds package.json. The module
 * runs from src/http/routes (tsx, tests) or dist/src/http/routes (the build), so no fixed number
 * of `..` fits both.
 */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir
    const parent = dirname(dir)
    if (parent === dir)
      throw new Error(`openapi.yaml: no package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
}

/** Read once at start-up; the document does not change while the process runs. */
const OPENAPI_YAML = readFileSync(join(projectRoot(), 'openapi.yaml'), 'utf8')

const CACHE_CONTROL = 'public, max-age=300'

/**
 * @scalar/hono-api-reference ships no browser bundle of its own: the page it renders loads the
 * Scalar standalone script from jsDelivr. Self-hosting would need @scalar/api-reference (the
 * bundle) as a dependency, so the CDN is used, pinned to the release that matches the
 * configuration format of @scalar/hono-api-reference 0.9.x (@scalar/types 0.6.x) so that an
 * unannounced upstream release cannot change what /docs runs. Bump both together.
 */
const SCALAR_BUNDLE =
  'https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.46.4/dist/browser/standalone.js'

/** Loaded on the first visit to /docs: a server nobody reads the docs of never holds the module. */
async function renderReference(c: Context, next: () => Promise<void>): Promise<Response> {
  const { Scalar } = await import('@scalar/hono-api-reference')
  const handler = Scalar({
    url: '/openapi.yaml',
    pageTitle: 'Tessera API reference',
    cdn: SCALAR_BUNDLE,
    // Default fonts come from fonts.scalar.com; system fonts keep the page off a third origin.
    withDefaultFonts: false,
    telemetry: false,
  })
  return (await handler(c, next)) as Response
}

const sha256 = (text: string) =>
  `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

/**
 * The app's policy is `default-src 'none'` for every response; this page is the one exception and
 * gets its own, as narrow as the reference allows:
 * - scripts: the pinned CDN bundle (a full URL, not the whole jsDelivr origin) and, by hash, the
 *   one inline script that starts it. The bundle needs no eval (it only feature-detects
 *   `new Function`).
 * - styles: 'unsafe-inline', because the bundle injects <style> elements and style attributes at
 *   run time (no hash can name those). It loads no stylesheets or fonts from anywhere.
 * - connect: 'self', to fetch /openapi.yaml and let "try it" call this server.
 * - images: 'self' and data: URIs (icons embedded by the bundle).
 */
function docsPolicy(html: string): string {
  const inlineScripts = [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].map(
    (m) => m[1] ?? '',
  )
  return [
    "default-src 'none'",
    `script-src ${SCALAR_BUNDLE} ${inlineScripts.map(sha256).join(' ')}`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}

/** The page is the same for every request: rendered once, with its policy. */
let page: Promise<{ html: string; policy: string }> | undefined

/** `GET /openapi.yaml` (the document as it is in the repository) and `GET /docs` (rendered). */
export const docsRoutes = new Hono<AppEnv>()
  .get('/openapi.yaml', (c) => {
    c.header('Content-Type', 'application/yaml')
    c.header('Cache-Control', CACHE_CONTROL)
    return c.body(OPENAPI_YAML)
  })
  .get('/docs', async (c, next) => {
    if (page === undefined) {
      page = (async () => {
        // Scalar's handler is typed for a plain Hono context; all it does is c.html(...).
        const rendered = await renderReference(c as unknown as Context, next)
        const html = await rendered.text()
        return { html, policy: docsPolicy(html) }
      })()
      // A failed render is not cached.
      page.catch(() => {
        page = undefined
      })
    }
    const { html, policy } = await page
    c.header('Content-Security-Policy', policy)
    c.header('Cache-Control', CACHE_CONTROL)
    return c.html(html)
  })
