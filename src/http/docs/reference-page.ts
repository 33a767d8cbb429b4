import { createHash } from 'node:crypto'
import { SCALAR_ENTRY, SCALAR_VERSION } from './scalar-bundle.js'

/** Where the bundle's files are served; versioned, so every URL under it is immutable. */
export const ASSETS_PATH = `/docs/assets/${SCALAR_VERSION}`

/**
 * Scalar's configuration (its `createApiReference` options). Everything that would reach another
 * origin is off: the default fonts (fonts.scalar.com), telemetry, the AI agent (api.scalar.com;
 * on by default when the page is served from localhost) and the developer toolbar. No `proxyUrl`:
 * "try it" calls this server directly, which `connect-src 'self'` allows. The document's own
 * `servers` entry is the issuer (openapi-document.ts), so the page names the right server.
 */
const CONFIGURATION = {
  url: './openapi.yaml',
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: 'never',
}

/**
 * The one inline script: imports the module build and mounts the reference. Relative URLs, so the
 * page also works behind a proxy that serves Tessera under a path prefix. The bundle validates
 * with zod, which probes `new Function` (a CSP violation under a policy without 'unsafe-eval')
 * unless its global configuration says `jitless`; zod reads that configuration from
 * `globalThis.__zod_globalConfig`, so it is set before the bundle is imported.
 */
const INIT_SCRIPT =
  'globalThis.__zod_globalConfig = { jitless: true }\n' +
  `const { createApiReference } = await import('.${ASSETS_PATH}/${SCALAR_ENTRY}')\n` +
  `createApiReference('#reference', ${JSON.stringify(CONFIGURATION)})\n`

const sha256 = (text: string) =>
  `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

/** The page: the same for every request and every deployment, so it is made once. */
export const REFERENCE_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Tessera API reference</title>
    <!-- No icon: the browser would otherwise ask for /favicon.ico, which is 404. -->
    <link rel="icon" href="data:,">
  </head>
  <body>
    <noscript>The reference needs JavaScript; the document is at /openapi.yaml.</noscript>
    <div id="reference"></div>
    <script type="module">${INIT_SCRIPT}</script>
  </body>
</html>
`

/**
 * The app's policy is `default-src 'none'` for every response; this page gets its own, as narrow
 * as the reference allows:
 * - scripts: this origin (the bundle and its chunks) and, by hash, the one inline script. The
 *   bundle needs no eval.
 * - styles: this origin and 'unsafe-inline': the bundle and libraries inside it (its toasts, its
 *   editor) inject `<style>` elements at run time, built in the browser, so no hash can name them,
 *   and not all of them take a nonce. Styles cannot run code, and the page loads no stylesheet
 *   or font from anywhere else.
 * - connect: 'self', to fetch /openapi.yaml and let "try it" call this server.
 * - images: 'self' and data: URIs (icons embedded by the bundle).
 */
export const REFERENCE_POLICY = [
  "default-src 'none'",
  `script-src 'self' ${sha256(INIT_SCRIPT)}`,
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')
