import { randomBytes } from 'node:crypto'
import { Secret, TOTP } from 'otpauth'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type CatalogProcess, startCatalog } from '../support/catalog.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { runCli, startTesseraProcess, type TesseraProcess } from '../support/process.js'
import { PASSWORD, uniqueEmail } from '../support/users.js'

const COOLDOWN_MS = 3000

const kidOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split('.')[3]!, 'base64url').toString()) as { kid: string }).kid

describe('a catalog service verifying Tessera tokens, two real processes', () => {
  let db: TestDatabase
  let tessera: TesseraProcess
  let catalog: CatalogProcess
  /**
   * How often the catalog has fetched the keys, from Tessera's request log. The log reaches this
   * process through a pipe, independently of the HTTP responses, so first a request with a unique
   * id is sent and its log line awaited: the pipe is in order, so every earlier line is in too.
   */
  async function keyFetches(): Promise<number> {
    const barrier = `barrier-${randomBytes(8).toString('hex')}`
    await tessera.request('/health', { headers: { 'x-request-id': barrier } })
    await vi.waitFor(() => expect(tessera.output()).toContain(barrier), {
      timeout: 5_000,
      interval: 20,
    })
    return tessera
      .output()
      .split('\n')
      .filter((l) => l.includes('"path":"/v1/keys"')).length
  }

  beforeAll(async () => {
    db = await createTestDatabase('sqlite')
    // info-level request logs let the test count how often the catalog fetches the keys.
    tessera = await startTesseraProcess({ databaseUrl: db.url, env: { LOG_LEVEL: 'info' } })
    catalog = await startCatalog(tessera.url, {
      KEYS_REFETCH_COOLDOWN_MS: String(COOLDOWN_MS),
      // The key fetches counted below are those tokens cause; feed documents signed with a new
      // key would cause one too (test/revocations/catalog.test.ts covers the feed).
      TESSERA_REVOCATIONS: 'off',
    })
  }, 40_000)
  afterAll(async () => {
    catalog?.stop()
    await tessera?.stop()
    await db?.drop()
  })

  const login = async (email: string) => {
    const res = await tessera.request('/api/v1/auth/login', { json: { email, password: PASSWORD } })
    expect(res.status).toBe(200)
    return ((await res.json()) as { access_token: string }).access_token
  }
  const call: CatalogProcess['call'] = (path, init) => catalog.call(path, init)

  it('public reads, authenticated writes, and an academic-only route', async () => {
    const email = uniqueEmail('catalog')
    const registered = await tessera.request('/api/v1/auth/register', {
      json: { email, password: PASSWORD, full_name: 'Santiago Ramón y Cajal', role: 'researcher' },
    })
    expect(registered.status).toBe(201)
    const token = await login(email)

    expect((await call('/projects')).status).toBe(200)
    expect((await call('/search?q=x')).status).toBe(200)
    const anonymous = await call('/projects', { json: { name: 'Retina' } })
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toContain('Bearer')

    const project = await call('/projects', {
      token,
      json: { name: 'Retina', description: 'synapse atlas' },
    })
    expect(project.status).toBe(201)
    const { id } = (await project.json()) as { id: string }
    expect((await call(`/projects/${id}`)).status).toBe(200)
    expect(
      ((await (await call('/search?q=synapse')).json()) as { results: unknown[] }).results,
    ).toHaveLength(1)
    expect(
      (await call(`/projects/${id}`, { method: 'PUT', token, json: { name: 'Retina v2' } })).status,
    ).toBe(200)
    expect((await call(`/projects/${id}`, { method: 'DELETE' })).status).toBe(401)
    expect((await call(`/projects/${id}`, { method: 'DELETE', token })).status).toBe(204)

    const run = (await (await call('/runs', { token, json: { name: 'run 1' } })).json()) as {
      id: string
    }
    const denied = await call(`/runs/${run.id}/analysis`, { token, json: {} })
    expect(denied.status).toBe(403)
    expect(((await denied.json()) as { code: string }).code).toBe('not_verified')

    // The operator promotes the account on the server host; the next token says so.
    const promoted = await runCli(['user', 'promote', '--email', email], { databaseUrl: db.url })
    expect(promoted.code, promoted.stderr).toBe(0)
    expect((await call(`/runs/${run.id}/analysis`, { token, json: {} })).status).toBe(403)
    const fresh = await login(email)
    expect((await call(`/runs/${run.id}/analysis`, { token: fresh, json: {} })).status).toBe(202)
  })

  it("uploading a run's files needs a session with a second factor (requireMfa)", async () => {
    const email = uniqueEmail('upload')
    const registered = await tessera.request('/v1/user/auth/register', {
      json: { email, password: PASSWORD },
    })
    expect(registered.status).toBe(201)
    const token = await login(email)
    const run = (await (await call('/runs', { token, json: { name: 'run 2' } })).json()) as {
      id: string
    }
    const refused = await call(`/runs/${run.id}/files`, { token, json: { reads: 'ACGT' } })
    expect(refused.status).toBe(403)
    expect(((await refused.json()) as { code: string }).code).toBe('mfa_step_up_required')
    expect(refused.headers.get('www-authenticate')).toContain('insufficient_user_authentication')

    // Enrolled, signed in through both factors: the token's amr holds `mfa`. Codes from the real
    // clock: the next step's code is within the window and later than the enrolment's.
    const code = (offset: number) =>
      new TOTP({ secret: Secret.fromBase32(secret), digits: 6, period: 30 }).generate({
        timestamp: Date.now() + offset,
      })
    const started = await tessera.request('/v1/user/mfa/totp', { method: 'POST', token })
    const { secret } = (await started.json()) as { secret: string }
    const confirmed = await tessera.request('/v1/user/mfa/totp/confirm', {
      token,
      json: { code: code(0) },
    })
    expect(confirmed.status).toBe(200)
    const first = await tessera.request('/v1/user/auth/login', {
      json: { email, password: PASSWORD },
    })
    expect(first.status).toBe(401)
    const { mfa_ticket } = (await first.json()) as { mfa_ticket: string }
    const second = await tessera.request('/v1/user/auth/mfa', {
      json: { mfa_ticket, totp_code: code(30_000) },
    })
    expect(second.status).toBe(200)
    const { access_token } = (await second.json()) as { access_token: string }
    const uploaded = await call(`/runs/${run.id}/files`, {
      token: access_token,
      json: { reads: 'ACGT' },
    })
    expect(uploaded.status).toBe(201)
  })

  it('follows a key rotation and does not let forged kids drive key fetches', async () => {
    const email = uniqueEmail('rotation')
    await tessera.request('/v1/user/auth/register', { json: { email, password: PASSWORD } })
    const before = await login(email)
    expect((await call('/projects', { token: before, json: { name: 'before' } })).status).toBe(201)

    // The emergency rotation, whose key signs at once (test/keys/rotation.test.ts has the
    // gradual one): the catalog meets a kid it does not know and must refetch.
    const rotated = await runCli(['keys', 'rotate', '--now'], { databaseUrl: db.url })
    expect(rotated.code, rotated.stderr).toBe(0)
    // Tessera re-reads its keys every second (src/keys/key-ring.ts).
    await new Promise((r) => setTimeout(r, 1_500))
    const after = await login(email)
    expect(kidOf(after)).not.toBe(kidOf(before))
    await new Promise((r) => setTimeout(r, COOLDOWN_MS))

    const fetchesBefore = await keyFetches()
    expect((await call('/projects', { token: after, json: { name: 'after' } })).status).toBe(201)
    expect(await keyFetches()).toBe(fetchesBefore + 1)
    // The old key is retiring, still published: its tokens keep working.
    expect((await call('/projects', { token: before, json: { name: 'old key' } })).status).toBe(201)

    // A flood of tokens with made-up kids: each refused, at most one fetch per cooldown.
    const [header, purpose, payload] = after.split('.')
    const started = Date.now()
    const flood = await Promise.all(
      Array.from({ length: 50 }, () => {
        const footer = Buffer.from(
          JSON.stringify({ kid: `k4.pid.${randomBytes(33).toString('base64url')}` }),
        ).toString('base64url')
        return call('/projects', {
          token: `${header}.${purpose}.${payload}.${footer}`,
          json: { name: 'forged' },
        })
      }),
    )
    expect(flood.every((r) => r.status === 401)).toBe(true)
    const windows = Math.floor((Date.now() - started) / COOLDOWN_MS) + 1
    expect((await keyFetches()) - fetchesBefore - 1).toBeLessThanOrEqual(windows)
  }, 40_000)
})
