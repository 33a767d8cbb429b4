import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { runTesseraInProcess } from '../support/cli.js'
import { expectProblem, PASSWORD, type TokenPairBody, uniqueEmail } from '../support/users.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** The installed command over the compiled code (built by test/support/global-setup.ts). */
const CLI = join(ROOT, 'bin/tessera.cjs')

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * The real CLI in a child process, with its own environment and optional standard input: for the
 * cases about the process (its exit status, its stdin, the files it leaves for the next one).
 */
function tesseraProcess(env: Record<string, string>, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

/** The same command in this process: the cases about what a command does. */
function tessera(env: Record<string, string>, args: string[], input?: string): Promise<Run> {
  return runTesseraInProcess(args, { env, ...(input === undefined ? {} : { input }) })
}

/** The `kid` in an access token's footer: which key signed it. */
function kidOf(token: string): string {
  const footer = token.split('.')[3]!
  return (JSON.parse(Buffer.from(footer, 'base64url').toString('utf8')) as { kid: string }).kid
}

function claimsOf(accessToken: string): { acct: string; sub: string } {
  const bytes = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return JSON.parse(bytes.subarray(0, bytes.length - 64).toString('utf8')) as {
    acct: string
    sub: string
  }
}

function keyLines(stdout: string): Array<{ status: string; kid: string }> {
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [status, kid] = line.trim().split(/\s+/)
      return { status: status!, kid: kid! }
    })
}

const COMMANDS = [
  'serve',
  'migrate',
  'keys rotate',
  'keys revoke',
  'keys list',
  'user create-superuser',
  'user promote',
  'user disable',
  'user enable',
  'user list',
  'user show',
  'user set-type',
  'user delete',
  'user reset-password',
]

describe('the tessera CLI [sqlite]', { timeout: 60_000 }, () => {
  let dir: string
  let env: Record<string, string>
  let server: RunningServer | undefined

  const post = (path: string, body: unknown) =>
    fetch(`${server!.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })

  async function loginOk(email: string, password = PASSWORD): Promise<TokenPairBody> {
    const res = await post('/v1/user/auth/login', { email, password })
    expect(res.status, await res.clone().text()).toBe(200)
    return (await res.json()) as TokenPairBody
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'))
    env = { DATABASE_URL: `sqlite:${join(dir, 'data', 't.db')}`, LOG_LEVEL: 'silent' }
  })
  afterAll(async () => {
    await server?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it("--help and every command's --help exit 0 with usage text", async () => {
    const top = await tessera(env, ['--help'])
    expect(top.code).toBe(0)
    expect(top.stdout).toMatch(/^Usage: tessera <command>/)
    for (const command of COMMANDS) expect(top.stdout).toContain(command)

    const runs = await Promise.all(COMMANDS.map((c) => tessera(env, [...c.split(' '), '--help'])))
    runs.forEach((run, i) => {
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toContain(`Usage: tessera ${COMMANDS[i]}`)
    })
    // Help does not touch the database.
    expect(existsSync(join(dir, 'data', 't.db'))).toBe(false)
  })

  const usageErrors: Array<[string, string[], RegExp]> = [
    ['an unknown command', ['frobnicate'], /Unknown command: frobnicate/],
    ['an unknown sub-command', ['keys', 'shred'], /Unknown command: keys shred/],
    ['no command at all', [], /Usage: tessera/],
    ['an unknown option', ['migrate', '--shred'], /--shred/],
    ['--email without its value', ['user', 'promote', '--email'], /--email/],
  ]
  for (const [i, [name, args, message]] of usageErrors.entries()) {
    it(`a usage error exits 2: ${name}`, async () => {
      // One of them as a process: the exit status reaches the shell.
      const run = await (i === 0 ? tesseraProcess : tessera)(env, args)
      expect(run.code).toBe(2)
      expect(run.stdout + run.stderr).toMatch(message)
    })
  }

  it('a bad configuration exits non-zero naming the variable', async () => {
    const run = await tesseraProcess({ ...env, ACCESS_TOKEN_TTL: 'soon' }, ['migrate'])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('ACCESS_TOKEN_TTL')
  })

  it('migrate creates the database and is idempotent', async () => {
    const first = await tesseraProcess(env, ['migrate'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/Success\s+0001_initial/)
    expect(existsSync(join(dir, 'data', 't.db'))).toBe(true)
    const second = await tessera(env, ['migrate'])
    expect(second.code).toBe(0)
    expect(second.stdout).toContain('Database is up to date')
  })

  it('user create-superuser reads the password from stdin', async () => {
    // The superuser logs in on a server over the same file.
    const run = await tesseraProcess(
      env,
      ['user', 'create-superuser', '--email', 'Root@Example.org', '--display-name', 'Root'],
      `${PASSWORD}\n`,
    )
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('Created superuser Root@Example.org')
    expect(run.stdout + run.stderr).not.toContain(PASSWORD)

    server = await startServer(
      loadConfig({ ...env, HOST: '127.0.0.1', PORT: '0', RATE_LIMIT_LOGIN_PER_ACCOUNT: '0' }),
    )
    const pair = await loginOk('root@example.org')
    expect(claimsOf(pair.access_token).acct).toBe('superuser')
    const me = await fetch(`${server.url}/v1/user/me`, {
      headers: { authorization: `Bearer ${pair.access_token}` },
    })
    expect(await me.json()).toMatchObject({
      email: 'Root@Example.org',
      display_name: 'Root',
      account_type: 'superuser',
      verified: true,
    })
  })

  const refusedSuperusers: Array<[string, string[], string, RegExp]> = [
    ['a weak password', ['--email', 'weak@example.org'], 'password\n', /weak_password: .*common/],
    [
      'a too-short password',
      ['--email', 'short@example.org'],
      'abc\n',
      /weak_password: .*too short/,
    ],
    ['no password on stdin', ['--email', 'empty@example.org'], '', /No password/],
    ['a taken email', ['--email', ' ROOT@example.org'], `${PASSWORD}-2\n`, /email_taken/],
    [
      'an invalid email',
      ['--email', 'not-an-email'],
      `${PASSWORD}\n`,
      /--email must be an email address/,
    ],
  ]
  for (const [name, args, input, message] of refusedSuperusers) {
    it(`user create-superuser refuses ${name}: non-zero exit, a message, no account`, async () => {
      // --force: a superuser exists already (its refusal: test/cli/operations.test.ts).
      const run = await tessera(env, ['user', 'create-superuser', ...args, '--force'], input)
      expect(run.code).not.toBe(0)
      expect(run.stderr).toMatch(message)
      // The password is never echoed ("password" itself is a word of the weak_password reason).
      if (input.trim().length > 4 && !/password/i.test(input)) {
        expect(run.stdout + run.stderr).not.toContain(input.trim())
      }
      const email = args[1]!.trim().toLowerCase()
      const rows = await server!.tessera.db
        .selectFrom('users')
        .select(['account_type'])
        .where('email_normalized', '=', email)
        .execute()
      expect(rows.length).toBe(email === 'root@example.org' ? 1 : 0)
    })
  }

  it('user create-superuser without --email exits 2', async () => {
    const run = await tessera(env, ['user', 'create-superuser'], `${PASSWORD}\n`)
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('--email is required')
  })

  it('user promote --email makes an existing user a superuser (next token says so)', async () => {
    const email = uniqueEmail('promote')
    expect((await post('/v1/user/auth/register', { email, password: PASSWORD })).status).toBe(201)
    expect(claimsOf((await loginOk(email)).access_token).acct).toBe('regular')

    const run = await tessera(env, ['user', 'promote', '--email', email.toUpperCase()])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('is now a superuser')
    expect(claimsOf((await loginOk(email)).access_token).acct).toBe('superuser')
    const audit = await server!.tessera.db
      .selectFrom('audit_events')
      .select('detail')
      .where('event', '=', 'user_promoted')
      .execute()
    expect(audit.map((a) => JSON.parse(a.detail!) as unknown)).toContainEqual({ by: 'cli' })
  })

  it('user promote and user disable of an unknown email exit 1', async () => {
    for (const command of ['promote', 'disable']) {
      const run = await tessera(env, ['user', command, '--email', 'nobody@example.org'])
      expect(run.code).toBe(1)
      expect(run.stderr).toContain('No user with email nobody@example.org')
    }
  })

  it('user disable --email disables the user and ends their sessions', async () => {
    // On the running server.
    const email = uniqueEmail('disable')
    expect((await post('/v1/user/auth/register', { email, password: PASSWORD })).status).toBe(201)
    const pair = await loginOk(email)

    const run = await tessera(env, ['user', 'disable', '--email', email])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('is disabled')

    // The session itself is over, not only further refreshes: its access token is refused too.
    const me = await fetch(`${server!.url}/v1/user/me`, {
      headers: { authorization: `Bearer ${pair.access_token}` },
    })
    await expectProblem(me, 401, 'unauthorized')
    await expectProblem(
      await post('/v1/user/auth/refresh', { refresh_token: pair.refresh_token }),
      401,
      'invalid_refresh_token',
    )
    const sessions = await server!.tessera.db
      .selectFrom('sessions')
      .select('revoked_reason')
      .where('user_id', '=', claimsOf(pair.access_token).sub)
      .execute()
    expect(sessions.map((s) => s.revoked_reason)).toEqual(['user_disabled'])
    await expectProblem(
      await post('/v1/user/auth/login', { email, password: PASSWORD }),
      403,
      'account_disabled',
    )
    await expectProblem(
      await post('/v1/user/auth/login', { email, password: 'not-the-password' }),
      401,
      'invalid_credentials',
    )
  })

  it('keys rotate publishes a next key; keys rotate --now makes one active at once', async () => {
    // The server of this file signs with the active key throughout; old tokens still verify.
    const before = await tessera(env, ['keys', 'list'])
    expect(before.code, before.stderr).toBe(0)
    const initial = keyLines(before.stdout)
    expect(initial).toHaveLength(1)
    expect(initial[0]!.status).toBe('active')
    expect(initial[0]!.kid).toMatch(/^k4\.pid\./)
    const pair = await loginOk('root@example.org')

    const rotate = await tessera(env, ['keys', 'rotate'])
    expect(rotate.code, rotate.stderr).toBe(0)
    const [next] = keyLines(rotate.stdout)
    expect(next!.status).toBe('next')
    expect(next!.kid).not.toBe(initial[0]!.kid)
    // KEYS_MAX_AGE (300) + the verifier's cooldown (30) + 30 s of margin.
    // The table keys list prints (README, "Keys").
    expect(keyLines(rotate.stdout)).toEqual([
      { status: 'next', kid: next!.kid },
      { status: 'active', kid: initial[0]!.kid },
    ])
    const activates = /activates (\S+) /m.exec(rotate.stdout)?.[1]
    const delay = Date.parse(activates!) - Date.now()
    expect(delay).toBeGreaterThan(355_000)
    expect(delay).toBeLessThan(361_000)

    const listed = await tessera(env, ['keys', 'list'])
    expect(keyLines(listed.stdout)).toEqual([
      { status: 'next', kid: next!.kid },
      { status: 'active', kid: initial[0]!.kid },
    ])
    expect(listed.stdout).toMatch(/^next +\S+ created \S+Z activates \S+Z \(encrypted\)$/m)
    expect(listed.stdout).toMatch(/^active +\S+ created \S+Z activated \S+Z \(encrypted\)$/m)

    // One rotation at a time: a second one changes nothing.
    const again = await tessera(env, ['keys', 'rotate'])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`A rotation is already pending: ${next!.kid}`)

    // Published at once, and the server keeps signing with the active key.
    const keys = (await (await fetch(`${server!.url}/v1/keys`)).json()) as {
      keys: Array<{ kid: string; status: string }>
    }
    expect(keys.keys.map((k) => [k.kid, k.status])).toEqual([
      [next!.kid, 'next'],
      [initial[0]!.kid, 'active'],
    ])
    expect(kidOf((await loginOk('root@example.org')).access_token)).toBe(initial[0]!.kid)

    const now = await tessera(env, ['keys', 'rotate', '--now'])
    expect(now.code, now.stderr).toBe(0)
    const [fresh, retiring, ...rest] = keyLines(now.stdout)
    expect(fresh!.status).toBe('active')
    expect(fresh!.kid).not.toBe(initial[0]!.kid)
    expect(fresh!.kid).not.toBe(next!.kid)
    expect(retiring).toEqual({ status: 'retiring', kid: initial[0]!.kid })
    expect(rest).toEqual([])
    expect(now.stdout).toBe((await tessera(env, ['keys', 'list'])).stdout)
    expect(now.stderr).toContain(`The pending next key ${next!.kid} was withdrawn`)

    const after = await tessera(env, ['keys', 'list'])
    expect(keyLines(after.stdout)).toEqual([
      { status: 'active', kid: fresh!.kid },
      { status: 'retiring', kid: initial[0]!.kid },
    ])
    expect(after.stdout).toMatch(
      /^retiring .* activated \S+Z until \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/m,
    )
    const all = await tessera(env, ['keys', 'list', '--all'])
    expect(keyLines(all.stdout)).toEqual([
      { status: 'active', kid: fresh!.kid },
      { status: 'retired', kid: next!.kid },
      { status: 'retiring', kid: initial[0]!.kid },
    ])
    // No secret key material on the screen.
    expect(after.stdout + all.stdout + rotate.stdout + now.stdout).not.toMatch(/k4\.secret/)

    // A token signed with the now-retiring key still works.
    const me = await fetch(`${server!.url}/v1/user/me`, {
      headers: { authorization: `Bearer ${pair.access_token}` },
    })
    expect(me.status).toBe(200)
  })

  it('keys revoke takes exactly one key id', async () => {
    for (const args of [[], ['not-a-kid'], ['k4.pid.short'], [`k4.pid.${'A'.repeat(44)}`, 'x']]) {
      const run = await tessera(env, ['keys', 'revoke', ...args])
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr).toContain('keys revoke takes one key id')
    }
    const unknown = await tessera(env, ['keys', 'revoke', `k4.pid.${'A'.repeat(44)}`])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('No signing key k4.pid.AAAA')
  })
})
