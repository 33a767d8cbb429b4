/**
 * `tessera token create|list|revoke|mint` (README, "Scripts, pipelines and services") against
 * the real server: the secret or job token is the only thing on standard output, the list never
 * shows a secret, revocation works by id and for all, and a login too old to make a credential
 * asks for the password first.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PAT_PATTERN } from '../../src/personal-tokens/secret.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import type { CliResult } from '../support/process.js'
import { PASSWORD, uniqueEmail } from '../support/users.js'

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const PAT_TYPE = 'urn:tessera:params:oauth:token-type:pat'

function claimsOf(token: string): Record<string, unknown> {
  const body = Buffer.from(token.split('.')[2]!, 'base64url')
  return JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as Record<string, unknown>
}

describe('tessera token create|list|revoke|mint [sqlite]', { timeout: 120_000 }, () => {
  let app: TestApp
  let root: string
  let xdg: string

  beforeAll(async () => {
    app = await makeTestApp({
      env: {
        AUDIENCES: 'seqdb',
        RATE_LIMIT_LOGIN_PER_IP: '0',
        RATE_LIMIT_REGISTER_PER_IP: '0',
      },
    })
    root = mkdtempSync(join(tmpdir(), 'tessera-tokens-'))
    xdg = join(root, 'config')
    const email = uniqueEmail('token-cli')
    ok(await cli(['user', 'register', '--email', email], `${PASSWORD}\n`))
    ok(await cli(['user', 'login', '--email', email], `${PASSWORD}\n`))
  })
  afterAll(async () => {
    await app?.close()
    if (root !== undefined) rmSync(root, { recursive: true, force: true })
  })

  const cli = (args: string[], input = '') =>
    runTesseraInProcess(args, { env: { TESSERA_URL: app.url, XDG_CONFIG_HOME: xdg }, input })

  function ok(run: CliResult): CliResult {
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0)
    return run
  }

  const exchange = (pat: string) =>
    app.request('/v1/oauth/token', {
      json: { grant_type: EXCHANGE, subject_token: pat, subject_token_type: PAT_TYPE },
    })

  it('create prints the secret alone on stdout; list shows the token without it', async () => {
    const run = ok(
      await cli([
        'token',
        'create',
        '--name',
        'nightly',
        '--audience',
        'seqdb',
        '--scope',
        'read',
        '--expires-in',
        '90d',
      ]),
    )
    const secret = run.stdout.trim()
    expect(secret).toMatch(PAT_PATTERN)
    expect(run.stderr).toContain('only time the secret is shown')
    expect(run.stderr).not.toContain(secret)
    const exchanged = (await (await exchange(secret)).json()) as { access_token: string }
    expect(claimsOf(exchanged.access_token)).toMatchObject({ aud: 'seqdb', scope: 'read' })

    const list = ok(await cli(['token', 'list']))
    expect(list.stdout).toContain('"nightly"')
    expect(list.stdout).toContain(secret.slice(0, 12))
    expect(list.stdout + list.stderr).not.toContain(secret)
    const id = list.stdout.split(/\s+/)[0]!

    expect(ok(await cli(['token', 'revoke', id])).stdout).toContain(`Revoked ${id}`)
    expect(((await (await exchange(secret)).json()) as { code: string }).code).toBe(
      'personal_token_revoked',
    )
  })

  it('mint prints a job token of the asked TTL; revoke --all ends it', async () => {
    const run = ok(await cli(['token', 'mint', '--audience', 'seqdb', '--ttl', '2h']))
    const token = run.stdout.trim()
    const claims = claimsOf(token)
    expect(claims.aud).toBe('seqdb')
    expect(Date.parse(claims.exp as string) - Date.parse(claims.iat as string)).toBe(7_200_000)
    expect(ok(await cli(['token', 'list'])).stdout).toContain('  job  ')
    expect((await app.request('/v1/authz?audience=seqdb', { token })).status).toBe(200)
    expect(ok(await cli(['token', 'revoke', '--all'])).stdout).toContain('Revoked 1 token')
    await expect
      .poll(async () => (await app.request('/v1/authz?audience=seqdb', { token })).status)
      .toBe(401)
  })

  it('usage errors exit 2; a TTL over the maximum is refused by the server', async () => {
    expect((await cli(['token', 'mint'])).code).toBe(2)
    expect((await cli(['token', 'create'])).code).toBe(2)
    expect((await cli(['token', 'mint', '--audience', 'seqdb', '--ttl', 'soon'])).code).toBe(2)
    expect((await cli(['token', 'revoke'])).code).toBe(2)
    const long = await cli(['token', 'mint', '--audience', 'seqdb', '--ttl', '2d'])
    expect(long.code).toBe(1)
    expect(long.stderr).toContain('validation_failed')
    const unknown = await cli(['token', 'create', '--name', 'x', '--audience', 'nope'])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('invalid_target')
  })

  it('an old login is asked for the password before a token is made', async () => {
    const now = app.clock()
    try {
      app.clock.advance((app.server.tessera.config.reauthMaxAge + 1) * 1000)
      const wrong = await cli(['token', 'create', '--name', 'late'], 'not the password\n')
      expect(wrong.code).toBe(1)
      expect(wrong.stderr).toContain('password is wrong')
      const run = ok(await cli(['token', 'create', '--name', 'late'], `${PASSWORD}\n`))
      expect(run.stdout.trim()).toMatch(PAT_PATTERN)
    } finally {
      app.clock.set(now)
    }
  })
})
