/**
 * The reference renderer's files (README, "Routes"): served from the installed package with
 * their type, an immutable cache lifetime and gzip when the client takes it; nothing outside the
 * bundle's own files is reachable, however the path is spelt. No database involved: SQLite only.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { request } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'

const PACKAGE_DIR = dirname(
  dirname(createRequire(import.meta.url).resolve('@scalar/api-reference')),
)
const { version } = JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as {
  version: string
}
const BROWSER_DIR = join(PACKAGE_DIR, 'dist', 'browser')
const ASSETS = `/docs/assets/${version}`

interface Raw {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** One GET with the path exactly as written (fetch would normalise `..` and decode nothing). */
function rawGet(app: TestApp, path: string, headers: Record<string, string> = {}): Promise<Raw> {
  const { hostname, port } = new URL(app.url)
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      )
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

describe('/docs/assets [sqlite]', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp()
  })
  afterAll(() => app?.close())

  const chunk = readdirSync(join(BROWSER_DIR, 'chunks')).find((name) => name.endsWith('.js'))!

  it('entry module and chunks: the package files, as JavaScript, cached for good', async () => {
    for (const [path, file] of [
      [`${ASSETS}/standalone.esm.js`, join(BROWSER_DIR, 'standalone.esm.js')],
      [`${ASSETS}/chunks/${chunk}`, join(BROWSER_DIR, 'chunks', chunk)],
    ] as const) {
      const res = await rawGet(app, path)
      expect(res.status, path).toBe(200)
      expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8')
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable')
      expect(res.headers.vary).toMatch(/^Accept-Encoding\b/)
      expect(res.headers['content-encoding']).toBeUndefined()
      expect(res.headers['x-content-type-options']).toBe('nosniff')
      expect(res.body.equals(readFileSync(file))).toBe(true)
    }
  })

  it('gzip when the client accepts it, the same bytes once decoded', async () => {
    const file = readFileSync(join(BROWSER_DIR, 'standalone.esm.js'))
    const cases: Array<[string, boolean]> = [
      ['gzip', true],
      ['gzip, deflate, br', true],
      ['br;q=1.0, gzip;q=0.5', true],
      ['*', true],
      ['*;q=0, gzip', true],
      ['gzip;q=0', false],
      ['gzip;q=0, *', false],
      ['identity', false],
      ['deflate, br', false],
    ]
    for (const [acceptEncoding, gzipped] of cases) {
      const res = await rawGet(app, `${ASSETS}/standalone.esm.js`, {
        'accept-encoding': acceptEncoding,
      })
      expect([acceptEncoding, res.status, res.headers['content-encoding']]).toEqual([
        acceptEncoding,
        200,
        gzipped ? 'gzip' : undefined,
      ])
      const body = gzipped ? gunzipSync(res.body) : res.body
      expect(body.equals(file), acceptEncoding).toBe(true)
      if (gzipped) expect(res.body.length).toBeLessThan(file.length / 3)
    }
  })

  it('only the bundle files: other versions, files, maps and traversals are 404', async () => {
    const paths = [
      '/docs/assets/0.0.1/standalone.esm.js',
      `${ASSETS}/standalone.js`,
      `${ASSETS}/standalone.esm.js.map`,
      `${ASSETS}/chunks/${chunk}.map`,
      `${ASSETS}/chunks/missing.js`,
      `${ASSETS}/../../package.json`,
      `${ASSETS}/chunks/../standalone.js`,
      `${ASSETS}/chunks/..%2fstandalone.js`,
      `${ASSETS}/chunks/%2e%2e%2f%2e%2e%2fpackage.json`,
      `${ASSETS}/chunks/..%2f..%2f..%2fpackage.json`,
      `${ASSETS}/%2e%2e/%2e%2e/%2e%2e/package.json`,
      `${ASSETS}/chunks/.js`,
      `${ASSETS}/chunks/...js`,
    ]
    for (const path of paths) {
      const res = await rawGet(app, path)
      expect([path, res.status]).toEqual([path, 404])
      expect(JSON.parse(res.body.toString('utf8'))).toMatchObject({ code: 'not_found' })
    }
    // A backslash is not even HTTP: node:http refuses the request line.
    expect((await rawGet(app, `${ASSETS}/chunks/..\\..\\package.json`)).status).toBe(400)
  })
})
