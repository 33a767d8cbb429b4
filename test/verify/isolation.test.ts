/**
 * `tessera/verify` is published alone: loading it must not pull in the rest of Tessera (database
 * drivers, argon2, the server, the logger), only its own files and the PASETO core in src/paseto.
 * A fresh Node process imports src/verify/index.ts with a module resolve hook (`module.register`,
 * Node 20.6+) that writes down every module URL the import graph resolves; CommonJS modules loaded
 * by `require` are read from `require.cache`. The same process lists the module's exports, which
 * must be the resource-service API and nothing of the signing side.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const VERIFY_DIR = `${join(ROOT, 'src', 'verify')}/`
const PASETO_DIR = `${join(ROOT, 'src', 'paseto')}/`
const SRC_DIR = `${join(ROOT, 'src')}/`

/** What the module is allowed to load besides its own files and node built-ins. */
const ALLOWED_PACKAGES = new Set(['hono', 'paseto', '@noble/hashes'])
const FORBIDDEN_PACKAGES = [
  'better-sqlite3',
  'pg',
  'kysely',
  '@node-rs/argon2',
  'rate-limiter-flexible',
  'pino',
  '@hono/node-server',
  'valibot',
  'oauth4webapi',
]

/** The runtime exports of `tessera/verify` (types are not visible at run time). */
const PUBLIC_EXPORTS = [
  'KeySetUnavailableError',
  'RevocationDocumentError',
  'RevocationsUnavailableError',
  'TokenError',
  'auth',
  'createLocalKeySet',
  'createRemoteKeySet',
  'createVerifier',
  'importPublicPaserk',
  'publicKeyId',
  'requireAccountType',
  'requireAuth',
  'requireMfa',
  'requireScope',
  'requireVerified',
  'verifyAccessToken',
  'verifyRevocationDocument',
]

const HOOKS = `
import { appendFileSync } from 'node:fs'
export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context)
  appendFileSync(process.env.VERIFY_ISOLATION_LOG, result.url + '\\n')
  return result
}
`
const REGISTER = `import { register } from 'node:module'
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)})`

const SCRIPT = `
import { createRequire } from 'node:module'
const verify = await import(${JSON.stringify(pathToFileURL(join(VERIFY_DIR, 'index.ts')).href)})
process.stdout.write(JSON.stringify({
  cjs: Object.keys(createRequire(${JSON.stringify(`${ROOT}/`)}).cache),
  exports: Object.keys(verify),
}))
`

/** The npm package a file in node_modules belongs to (`@scope/name` or `name`), if any. */
function packageOf(path: string): string | undefined {
  const at = path.lastIndexOf('/node_modules/')
  if (at === -1) return undefined
  const parts = path.slice(at + '/node_modules/'.length).split('/')
  return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
}

describe('tessera/verify loads nothing from the rest of Tessera', () => {
  let dir: string
  let esmModules: string[]
  let cjsModules: string[]
  let exported: string[]

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-verify-isolation-'))
    const log = join(dir, 'resolved.log')
    const stdout = await new Promise<string>((done, fail) => {
      execFile(
        process.execPath,
        [
          '--import',
          'tsx',
          '--import',
          `data:text/javascript,${encodeURIComponent(REGISTER)}`,
          '--input-type=module',
          '-e',
          SCRIPT,
        ],
        { cwd: ROOT, env: { ...process.env, VERIFY_ISOLATION_LOG: log }, timeout: 60_000 },
        (error, out, err) => (error ? fail(new Error(`${error.message}\n${err}`)) : done(out)),
      )
    })
    ;({ cjs: cjsModules, exports: exported } = JSON.parse(stdout) as {
      cjs: string[]
      exports: string[]
    })
    esmModules = [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))].map((url) =>
      url.startsWith('file:') ? fileURLToPath(url) : url,
    )
  }, 90_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('records the import graph (the hook works)', () => {
    for (const file of [
      'index.ts',
      'token.ts',
      'key-set.ts',
      'verifier.ts',
      'middleware.ts',
      'revocation-feed.ts',
    ]) {
      expect(esmModules).toContain(join(VERIFY_DIR, file))
    }
  })

  it('imports no file of src/ outside src/verify/ and src/paseto/', () => {
    const outside = [...esmModules, ...cjsModules].filter(
      (path) =>
        path.startsWith(SRC_DIR) && !path.startsWith(VERIFY_DIR) && !path.startsWith(PASETO_DIR),
    )
    expect(outside).toEqual([])
  })

  it('loads none of the database, hashing, rate-limit, logging or server packages', () => {
    const loaded = new Set(
      [...esmModules, ...cjsModules].map(packageOf).filter((p) => p !== undefined),
    )
    for (const name of FORBIDDEN_PACKAGES) expect(loaded.has(name), name).toBe(false)
  })

  it('imports only itself, src/paseto, node built-ins, hono, paseto, @noble/hashes', () => {
    const strays = esmModules.filter((path) => {
      if (path.startsWith('node:')) return false
      if (path.startsWith(VERIFY_DIR) || path.startsWith(PASETO_DIR)) return false
      const name = packageOf(path)
      return name === undefined || !ALLOWED_PACKAGES.has(name)
    })
    expect(strays).toEqual([])
  })

  it('exports the resource-service API and nothing about secret keys or signing', () => {
    expect([...exported].sort()).toEqual(PUBLIC_EXPORTS)
    for (const name of exported) expect(name, name).not.toMatch(/secret|sign|encode|decode/i)
  })
})
