/**
 * The README's pipeline scripts ("Scripts, pipelines and services", "A pipeline without a
 * password") run as written: the curl snippet under bash and the Python snippet with `requests`,
 * each exchanging a real PAT at a real Tessera and creating a project at a real example catalog
 * whose audience is `seqdb`. Python needs `requests`: without it the Python case is skipped, and
 * under CI=true it fails instead.
 */
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { type CatalogProcess, startCatalog } from '../support/catalog.js'
import { login, register, uniqueEmail } from '../support/users.js'

const README = fileURLToPath(new URL('../../README.md', import.meta.url))

/** The fenced blocks of `language` in the README section titled `title`, as written. */
function snippets(title: string, language: string): string[] {
  const text = readFileSync(README, 'utf8')
  const start = text.indexOf(`\n### ${title}\n`)
  expect(start, `README has a section "${title}"`).toBeGreaterThan(-1)
  const rest = text.slice(start + 1)
  const next = rest.slice(1).search(/\n##+ /)
  const section = next === -1 ? rest : rest.slice(0, next + 1)
  const fence = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, 'g')
  return [...section.matchAll(fence)].map((m) => m[1]!)
}

/** The first Python with `requests`: the one on PATH, else Debian's (python3-requests). */
const python = ['python3', '/usr/bin/python3'].find(
  (candidate) => spawnSync(candidate, ['-c', 'import requests']).status === 0,
)
const hasRequests = python !== undefined

function run(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

describe('the README pipeline scripts [sqlite]', { timeout: 60_000 }, () => {
  let app: TestApp
  let seqdb: CatalogProcess
  let env: Record<string, string>

  beforeAll(async () => {
    app = await makeTestApp({ env: { AUDIENCES: 'seqdb' } })
    seqdb = await startCatalog(app.url, { TESSERA_AUDIENCE: 'seqdb' })
    const { email } = await register(app, uniqueEmail('readme'))
    const { access_token } = await login(app, email)
    // As the README makes it: tessera token create --name nightly-upload --audience seqdb
    // --scope write.
    const res = await app.request('/v1/user/tokens', {
      method: 'POST',
      token: access_token,
      json: { name: 'nightly-upload', audience: 'seqdb', scopes: ['write'] },
    })
    expect(res.status).toBe(201)
    const { token } = (await res.json()) as { token: string }
    env = { TESSERA_URL: app.url, SEQDB_URL: seqdb.url, TESSERA_PAT: token }
  }, 60_000)
  afterAll(async () => {
    seqdb?.stop()
    await app?.close()
  })

  async function projectNamed(id: string) {
    const res = await seqdb.call(`/projects/${id}`)
    expect(res.status).toBe(200)
    return (await res.json()) as { name: string; owner: string }
  }

  it('the curl snippet creates a project at seqdb', async () => {
    const [script] = snippets('A pipeline without a password', 'sh')
    expect(script).toContain('grant-type:token-exchange')
    const result = await run('bash', ['-euo', 'pipefail', '-c', script!], env)
    expect(result.code, result.stderr).toBe(0)
    const created = JSON.parse(result.stdout) as { id: string }
    expect((await projectNamed(created.id)).name).toBe('nightly upload')
    expect(result.stdout + result.stderr).not.toContain(env.TESSERA_PAT)
  })

  it.skipIf(!hasRequests && process.env.CI !== 'true')(
    'the Python requests snippet creates a project at seqdb',
    async () => {
      expect(hasRequests, 'python3 with requests (Debian: python3-requests)').toBe(true)
      const [script] = snippets('A pipeline without a password', 'python')
      const result = await run(python!, ['-c', script!], env)
      expect(result.code, result.stderr).toBe(0)
      const id = result.stdout.trim()
      expect((await projectNamed(id)).name).toBe('nightly upload')
      expect(result.stdout + result.stderr).not.toContain(env.TESSERA_PAT)
    },
  )

  it('a read-only PAT cannot create: the curl snippet fails', async () => {
    const { email } = await register(app, uniqueEmail('readme-read'))
    const { access_token } = await login(app, email)
    const res = await app.request('/v1/user/tokens', {
      method: 'POST',
      token: access_token,
      json: { name: 'reader', audience: 'seqdb', scopes: ['read'] },
    })
    const { token } = (await res.json()) as { token: string }
    const [script] = snippets('A pipeline without a password', 'sh')
    const result = await run('bash', ['-euo', 'pipefail', '-c', script!], {
      ...env,
      TESSERA_PAT: token,
    })
    // curl -f: the catalog's 403 insufficient_scope is a failure of the script.
    expect(result.code).not.toBe(0)
  })
})
