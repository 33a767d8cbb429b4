// The server's bundled build (docs/performance.md, "Start-up"): `npm run build` runs tsc, then this
// file joins tsc's output for the command (dist/src/cli/main.js) and the pure-JavaScript packages
// it loads into a few ES modules in dist/bundle/, which bin/tessera.cjs runs. Resolving and
// linking some 570 separate modules was most of the start-up time.
//
// tsc's output stays as it is: `tessera/verify` is published from it, and the tests run from src.
import { readdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const outdir = join(root, 'dist', 'bundle')

// Left as packages, loaded from node_modules when first used. Native addons, which find their
// binaries relative to their own files, and what the server imports only when it needs it (pg on
// a PostgreSQL URL, the mailer on the first mail, the docs page's assets, ...): in the bundle
// they would be parsed at every start for nothing.
const PACKAGES = [
  'better-sqlite3',
  '@node-rs/argon2',
  'pg',
  'nodemailer',
  'oauth4webapi',
  '@simplewebauthn/server',
  '@scalar/api-reference',
  'qrcode',
  'qrcode-terminal',
  // The client commands' token store: it needs graceful-fs, which patches node:fs when loaded.
  'proper-lockfile',
]
// CommonJS packages imported at start: read with require() rather than an ES `import`, which
// would scan each one's source for its export names first.
const REQUIRED = new Set(['better-sqlite3', '@node-rs/argon2'])

/** Keeps PACKAGES (their bare names only: `nodemailer/lib/addressparser` is bundled) external. */
const leaveOut = {
  name: 'tessera-external',
  setup(build) {
    const names = PACKAGES.map((name) => name.replace(/[/.]/g, '\\$&')).join('|')
    build.onResolve({ filter: new RegExp(`^(${names})$`) }, (args) => {
      if (REQUIRED.has(args.path) && args.kind === 'import-statement') {
        return { path: args.path, namespace: 'tessera-require' }
      }
      return { path: args.path, external: true }
    })
    build.onLoad({ filter: /.*/, namespace: 'tessera-require' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)})`,
      loader: 'js',
      resolveDir: root,
    }))
  },
}

const result = await build({
  absWorkingDir: root,
  // The refresh writer thread's code is an entry of its own, beside the command's, for the worker
  // to load (src/sessions/refresh-writer-thread.ts finds it there).
  entryPoints: {
    tessera: 'dist/src/cli/main.js',
    'refresh-writer': 'dist/src/sessions/refresh-writer.js',
  },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  chunkNames: 'chunks/[name]-[hash]',
  // Readable stack traces with `node --enable-source-maps`; node reads no map without the flag.
  sourcemap: 'linked',
  // The CommonJS packages in the bundle (pino, prom-client, ...) call require(); an ES module
  // has none of its own.
  banner: {
    js: [
      "import { createRequire as tesseraRequire } from 'node:module'",
      'const require = tesseraRequire(import.meta.url)',
    ].join('\n'),
  },
  plugins: [leaveOut],
  metafile: true,
  logLevel: 'warning',
})

// The chunks' names change with their contents. Earlier builds' files are deleted once the new
// ones are written, not before: a process starting meanwhile (another test run) still finds the
// files of the entry it read.
const written = new Set(Object.keys(result.metafile.outputs).map((file) => join(root, file)))
for (const entry of readdirSync(outdir, { recursive: true, withFileTypes: true })) {
  const file = join(entry.parentPath ?? entry.path, entry.name)
  if (entry.isFile() && !written.has(file)) rmSync(file)
}
