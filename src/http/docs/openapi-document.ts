import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The project root: the nearest directory above this module that holds package.json. The module
 * runs from src/http/docs (tsx, tests), dist/src/http/docs (tsc's build) or dist/bundle/chunks
 * (the bundle that bin/tessera.cjs runs), so no fixed number of `..` fits all three.
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
export const OPENAPI_YAML = readFileSync(join(projectRoot(), 'openapi.yaml'), 'utf8')

/** The document's top-level `servers:` block (the repository's names the default address). */
const SERVERS_BLOCK = /^servers:\n(?: {2}.*\n)+/m
if (!SERVERS_BLOCK.test(OPENAPI_YAML)) throw new Error('openapi.yaml: no top-level servers block')

const served = new Map<string, string>()

/**
 * The document as served: its `servers` is this deployment's TESSERA_ISSUER, so the rendered
 * reference, its "try it" and any tool reading `GET /openapi.yaml` name the server they were
 * fetched from, wherever it runs. One string per issuer (one per process in practice).
 */
export function servedOpenApi(issuer: string): string {
  let document = served.get(issuer)
  if (document === undefined) {
    // JSON strings are YAML double-quoted scalars; the issuer is a validated URL anyway.
    const servers =
      `servers:\n  - url: ${JSON.stringify(issuer)}\n` +
      '    description: This Tessera (TESSERA_ISSUER)\n'
    document = OPENAPI_YAML.replace(SERVERS_BLOCK, servers)
    served.set(issuer, document)
  }
  return document
}
