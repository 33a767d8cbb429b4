import { readdirSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'

const gzipAsync = promisify(gzip)

/**
 * The API reference's renderer, served from the installed `@scalar/api-reference` (pinned in
 * package.json), never from a CDN: `/docs` works air-gapped (README, "Routes").
 *
 * The package ships two browser builds in `dist/browser`: `standalone.js`, one classic script of
 * 4.3 MB, and `standalone.esm.js`, an ES module that imports the rest from `chunks/` as it needs
 * it. The page loads the module build: about 2.8 MB (0.8 MB gzipped) before the reference shows,
 * the rest only when a feature asks for it. Its exports map names neither build, so the package
 * is found through its main entry and the files are read from its directory.
 */
const PACKAGE = '@scalar/api-reference'

function locatePackage(): { dir: string; version: string } {
  let dir = dirname(createRequire(import.meta.url).resolve(PACKAGE))
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: string
        version?: string
      }
      if (manifest.name === PACKAGE && manifest.version !== undefined)
        return { dir, version: manifest.version }
    } catch {
      // No package.json here: keep walking up.
    }
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`${PACKAGE}: package.json not found above its entry`)
    dir = parent
  }
}

const located = locatePackage()
const BROWSER_DIR = join(located.dir, 'dist', 'browser')

/** The version in the assets' path: a new release is a new URL, so each URL is immutable. */
export const SCALAR_VERSION = located.version
/** The module the page imports, relative to the versioned assets directory. */
export const SCALAR_ENTRY = 'standalone.esm.js'

/**
 * Every file that may be served, by its name under the assets path: the entry module and the
 * `.js` files of `chunks/` (no source maps, nothing else). A request is answered only when its
 * name is a key here, so no request can reach any other file (no path traversal). Listed on the
 * first request: a server nobody reads the docs of never looks.
 */
let servable: Map<string, string> | undefined
function servableFiles(): Map<string, string> {
  if (servable === undefined) {
    servable = new Map([[SCALAR_ENTRY, join(BROWSER_DIR, SCALAR_ENTRY)]])
    for (const name of readdirSync(join(BROWSER_DIR, 'chunks'))) {
      if (name.endsWith('.js')) servable.set(`chunks/${name}`, join(BROWSER_DIR, 'chunks', name))
    }
  }
  return servable
}

export interface BundleFile {
  /** The file as it is in the package. */
  identity(): Promise<Buffer>
  /** Its gzip encoding, made on the first request that accepts it and kept. */
  gzip(): Promise<Buffer>
}

const files = new Map<string, BundleFile>()

/**
 * The file `name` (`standalone.esm.js`, `chunks/<file>.js`) of the bundle, or undefined when the
 * bundle has no such file. Contents and their gzip encodings are read and computed once, lazily;
 * the bundle is a fixed set of files (about 4 MB, 1 MB gzipped), so keeping them is bounded.
 */
export function bundleFile(name: string): BundleFile | undefined {
  const cached = files.get(name)
  if (cached !== undefined) return cached
  const path = servableFiles().get(name)
  if (path === undefined) return undefined
  let identity: Promise<Buffer> | undefined
  let gzipped: Promise<Buffer> | undefined
  const file: BundleFile = {
    // A failed read or compression is not kept: the next request tries again.
    identity: () => {
      identity ??= readFile(path).catch((error: unknown) => {
        identity = undefined
        throw error
      })
      return identity
    },
    gzip: () => {
      gzipped ??= file
        .identity()
        .then((raw) => gzipAsync(raw))
        .catch((error: unknown) => {
          gzipped = undefined
          throw error
        })
      return gzipped
    },
  }
  files.set(name, file)
  return file
}
