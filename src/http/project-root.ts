import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The project root, where the files Tessera serves as they are live (openapi.yaml, assets/): the
 * nearest directory above this module that holds package.json. The module runs from src/http
 * (tsx, tests), dist/src/http (tsc's build) or dist/bundle/chunks (the bundle that
 * bin/tessera.cjs runs), so no fixed number of `..` fits all three.
 */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`)
    dir = parent
  }
}
