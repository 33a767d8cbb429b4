import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from './process.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const START_TIMEOUT_MS = 30_000
const CALL_TIMEOUT_MS = 5_000

export interface CatalogProcess {
  url: string
  child: ChildProcess
  output(): string
  /** fetch against the catalog with an optional bearer token and JSON body. */
  call(path: string, init?: { method?: string; token?: string; json?: unknown }): Promise<Response>
  stop(): void
}

/**
 * The example catalog (examples/catalog) as its own process, verifying tokens against a running
 * Tessera with `tessera/verify`; `env` adds to its environment (TESSERA_REVOCATIONS, ...).
 */
export async function startCatalog(
  tesseraUrl: string,
  env: Record<string, string> = {},
): Promise<CatalogProcess> {
  const port = await freePort()
  const child = spawn(
    process.execPath,
    ['--conditions=tessera-source', '--import', 'tsx', 'examples/catalog/server.ts'],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOST: '127.0.0.1',
        PORT: String(port),
        TESSERA_URL: tesseraUrl,
        TESSERA_ISSUER: 'http://localhost:8000',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c))
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c))
  const url = `http://127.0.0.1:${port}`
  const call: CatalogProcess['call'] = async (path, init = {}) => {
    const method = init.method ?? (init.json === undefined ? 'GET' : 'POST')
    try {
      return await fetch(url + path, {
        method,
        headers: {
          ...(init.json === undefined ? {} : { 'content-type': 'application/json' }),
          ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` }),
        },
        ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
        // Well below the test's timeout: a catalog that stops answering fails with this call's
        // name and the catalog's output, not with the test's bare timeout.
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      })
    } catch (error) {
      throw new Error(`catalog ${method} ${path} failed: ${String(error)}\n${output}`)
    }
  }
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    try {
      if ((await fetch(`${url}/health`)).ok) {
        return { url, child, output: () => output, call, stop: () => child.kill('SIGKILL') }
      }
    } catch {
      // not yet listening
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL')
      throw new Error(`catalog did not start:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}
