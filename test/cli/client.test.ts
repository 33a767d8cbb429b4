import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import { type CliResult, freePort, runCli } from '../support/process.js'
import { expectProblem, login, PASSWORD, refresh, uniqueEmail } from '../support/users.js'

interface Entry {
  url: string
  access_token: string
  refresh_token: string
  access_expires_at: string
  refresh_expires_at: string
}

const CLIENT_COMMANDS = ['user register', 'user login', 'user whoami', 'user logout']
/** Past the access token's expiry (900 s) on the server, beyond its 30 s clock-skew tolerance. */
const PAST_ACCESS_EXPIRY_MS = (900 + 30 + 1) * 1000

describe('the tessera client commands (user register|login|whoami|logout) [sqlite]', {
  timeout: 120_000,
}, () => {
  let app: TestApp
  let root: string
  /** A fresh XDG_CONFIG_HOME per test. */
  let xdg: string
  let count = 0

  beforeAll(async () => {
    app = await makeTestApp({
      env: {
        RATE_LIMIT_LOGIN_PER_IP: '0',
        RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
        RATE_LIMIT_REGISTER_PER_IP: '0',
      },
    })
    root = mkdtempSync(join(tmpdir(), 'tessera-client-'))
  })
  afterAll(async () => {
    await app?.close()
    if (root !== undefined) rmSync(root, { recursive: true, force: true })
  })
  beforeEach(() => {
    count += 1
    xdg = join(root, `config-${count}`)
  })

  /**
   * The CLI in this process (the behaviour), or with `process: true` as its own process (exit
   * status, piped stdin, the file modes another process sees). DATABASE_URL is deliberately
   * meaningless and the server configuration broken: the client commands must not read either.
   */
  function cli(
    args: string[],
    options: { input?: string; url?: string; env?: Record<string, string>; process?: boolean } = {},
  ) {
    const env = {
      DATABASE_URL: 'unused',
      TESSERA_URL: options.url ?? app.url,
      XDG_CONFIG_HOME: xdg,
      ACCESS_TOKEN_TTL: 'soon',
      ...options.env,
    }
    const input = options.input ?? ''
    return options.process === true
      ? runCli(args, { databaseUrl: env.DATABASE_URL, env, input })
      : runTesseraInProcess(args, { env, input })
  }

  const credentialsDir = () => join(xdg, 'tessera')
  const credentialsFile = () => join(credentialsDir(), 'credentials.json')
  function stored(): Record<string, Entry> {
    return (
      JSON.parse(readFileSync(credentialsFile(), 'utf8')) as { servers: Record<string, Entry> }
    ).servers
  }
  const entry = (url = app.url) => stored()[url]

  function ok(run: CliResult): CliResult {
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0)
    return run
  }

  async function registerAndLoginCli(email = uniqueEmail('cli')): Promise<string> {
    ok(await cli(['user', 'register', '--email', email], { input: `${PASSWORD}\n` }))
    ok(await cli(['user', 'login', '--email', email], { input: `${PASSWORD}\n` }))
    return email
  }

  it('--help of every client command exits 0 with its usage', async () => {
    // And the top-level help lists them.
    const top = await cli(['--help'])
    expect(top.code).toBe(0)
    for (const command of CLIENT_COMMANDS) expect(top.stdout).toContain(command)
    expect(top.stdout).toContain('TESSERA_URL')
    const runs = await Promise.all(CLIENT_COMMANDS.map((c) => cli([...c.split(' '), '--help'])))
    runs.forEach((run, i) => {
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toContain(`Usage: tessera ${CLIENT_COMMANDS[i]}`)
    })
    // Help touches neither the server nor the config directory.
    expect(existsSync(xdg)).toBe(false)
  })

  it('register → login → whoami', async () => {
    // Tokens are stored 0600 in a 0700 directory and never printed.
    const email = uniqueEmail('Flow')
    const registered = ok(
      await cli(['user', 'register', '--email', email, '--display-name', 'Ada'], {
        input: `${PASSWORD}\n`,
        process: true,
      }),
    )
    expect(registered.stdout).toContain(email)
    expect(registered.stdout).toMatch(/display_name:\s+Ada/)
    expect(registered.stdout + registered.stderr).not.toContain(PASSWORD)
    // Registering does not log in.
    expect(existsSync(credentialsFile())).toBe(false)

    const loggedIn = ok(
      await cli(['user', 'login', '--email', email], { input: `${PASSWORD}\n`, process: true }),
    )
    expect(loggedIn.stdout).toContain(`Logged in to ${app.url} as ${email}`)

    expect(statSync(credentialsDir()).mode & 0o777).toBe(0o700)
    expect(statSync(credentialsFile()).mode & 0o777).toBe(0o600)
    const raw = readFileSync(credentialsFile(), 'utf8')
    expect(raw).not.toContain(PASSWORD)
    const e = entry()!
    expect(e.url).toBe(app.url)
    expect(e.access_token).toMatch(/^v4\.public\./)
    expect(e.refresh_token.length).toBeGreaterThan(40)
    expect(Date.parse(e.access_expires_at) - Date.now()).toBeGreaterThan(800_000)
    expect(Date.parse(e.refresh_expires_at) - Date.now()).toBeGreaterThan(29 * 86_400_000)

    const me = ok(await cli(['user', 'whoami'], { process: true }))
    expect(me.stdout).toContain(email)
    expect(me.stdout).toMatch(/account_type:\s+regular/)
    for (const run of [loggedIn, me]) {
      expect(run.stdout + run.stderr).not.toContain(e.access_token)
      expect(run.stdout + run.stderr).not.toContain(e.refresh_token)
      expect(run.stdout + run.stderr).not.toContain(PASSWORD)
    }
    // A valid access token is used as it is: no refresh.
    expect(entry()!.refresh_token).toBe(e.refresh_token)
    // No temporary or lock files are left behind.
    expect(readFileSync(credentialsFile(), 'utf8')).toBe(raw)
    expect(readdirSync(credentialsDir())).toEqual(['credentials.json'])
  })

  it('an access token the server calls expired is refreshed', async () => {
    // The new pair is stored and the old refresh token is spent.
    const email = await registerAndLoginCli()
    const before = entry()!
    app.clock.advance(PAST_ACCESS_EXPIRY_MS)

    const me = ok(await cli(['user', 'whoami']))
    expect(me.stdout).toContain(email)
    const after = entry()!
    expect(after.refresh_token).not.toBe(before.refresh_token)
    expect(after.access_token).not.toBe(before.access_token)
    expect(statSync(credentialsFile()).mode & 0o777).toBe(0o600)

    // The stored pair is the live one: whoami works again without another refresh.
    ok(await cli(['user', 'whoami']))
    expect(entry()!.refresh_token).toBe(after.refresh_token)

    // Presenting the spent token after the reuse interval is reuse: the server revokes the
    // family, and whoami notices.
    app.clock.advance(PAST_ACCESS_EXPIRY_MS)
    await expectProblem(await refresh(app, before.refresh_token), 401, 'refresh_token_reused')
    const gone = await cli(['user', 'whoami'])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain('not logged in: run tessera user login')
    expect(entry()).toBeUndefined()
  })

  it('an access token within 30 s of its expiry is refreshed before use', async () => {
    await registerAndLoginCli()
    const before = entry()!
    const file = JSON.parse(readFileSync(credentialsFile(), 'utf8')) as {
      servers: Record<string, Entry>
    }
    file.servers[app.url]!.access_expires_at = new Date(Date.now() + 10_000).toISOString()
    writeFileSync(credentialsFile(), JSON.stringify(file), { mode: 0o600 })

    ok(await cli(['user', 'whoami']))
    expect(entry()!.refresh_token).not.toBe(before.refresh_token)
    expect(Date.parse(entry()!.access_expires_at) - Date.now()).toBeGreaterThan(800_000)
  })

  it('logout ends the session on the server and removes the entry', async () => {
    // whoami then says not logged in.
    await registerAndLoginCli()
    const before = entry()!
    const out = ok(await cli(['user', 'logout']))
    expect(out.stdout).toContain(`Logged out of ${app.url}`)
    expect(entry()).toBeUndefined()
    await expectProblem(await refresh(app, before.refresh_token), 401, 'invalid_refresh_token')

    const me = await cli(['user', 'whoami'])
    expect(me.code).toBe(1)
    expect(me.stderr).toContain('not logged in: run tessera user login')
    // Logging out again is harmless.
    expect(ok(await cli(['user', 'logout'])).stdout).toContain('Not logged in')
  })

  it('a session revoked elsewhere (logout-all)', async () => {
    // whoami says not logged in and removes the entry.
    const email = await registerAndLoginCli()
    const other = await login(app, email)
    const res = await app.request('/v1/user/auth/logout-all', {
      method: 'POST',
      token: other.access_token,
    })
    expect(res.status).toBe(204)
    app.clock.advance(PAST_ACCESS_EXPIRY_MS)

    const me = await cli(['user', 'whoami'])
    expect(me.code).toBe(1)
    expect(me.stderr).toContain('not logged in: run tessera user login')
    expect(entry()).toBeUndefined()
  })

  it('one entry per server URL', async () => {
    // Two servers coexist and logging out of one keeps the other.
    const email = uniqueEmail('two')
    ok(await cli(['user', 'register', '--email', email], { input: `${PASSWORD}\n` }))
    // Two URLs of the same server are two servers as far as the store is concerned.
    const other = app.url.replace('127.0.0.1', 'localhost')
    ok(await cli(['user', 'login', '--email', email], { input: `${PASSWORD}\n` }))
    ok(await cli(['user', 'login', '--email', email], { input: `${PASSWORD}\n`, url: `${other}/` }))
    expect(Object.keys(stored()).sort()).toEqual([app.url, other].sort())

    ok(await cli(['user', 'logout'], { url: other }))
    expect(Object.keys(stored())).toEqual([app.url])
    expect(ok(await cli(['user', 'whoami'])).stdout).toContain(email)
  })

  it('logging in again replaces the entry and ends the replaced session', async () => {
    const email = await registerAndLoginCli()
    const first = entry()!
    ok(await cli(['user', 'login', '--email', email], { input: `${PASSWORD}\n` }))
    expect(entry()!.refresh_token).not.toBe(first.refresh_token)
    await expectProblem(await refresh(app, first.refresh_token), 401, 'invalid_refresh_token')
    ok(await cli(['user', 'whoami']))
  })

  it('server errors print code: detail and exit 1, storing nothing', async () => {
    const email = uniqueEmail('errors')
    ok(await cli(['user', 'register', '--email', email], { input: `${PASSWORD}\n` }))

    const wrong = await cli(['user', 'login', '--email', email], {
      input: 'not-the-password-at-all\n',
    })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/^invalid_credentials: /)
    expect(wrong.stderr).not.toContain('not-the-password-at-all')
    expect(existsSync(credentialsFile())).toBe(false)

    const taken = await cli(['user', 'register', '--email', email.toUpperCase()], {
      input: `${PASSWORD}\n`,
    })
    expect(taken.code).toBe(1)
    expect(taken.stderr).toMatch(/^email_taken: /)

    const weak = await cli(['user', 'register', '--email', uniqueEmail('weak')], {
      input: 'password\n',
    })
    expect(weak.code).toBe(1)
    expect(weak.stderr).toMatch(/^weak_password: /)

    const noPassword = await cli(['user', 'login', '--email', email], { input: '' })
    expect(noPassword.code).toBe(1)
    expect(noPassword.stderr).toContain('No password')
  })

  it('usage errors exit 2: register without --email, login --password without it', async () => {
    // `user login` alone is a browser or device login (test/cli/device-login.test.ts).
    const cases: Array<[string[], string]> = [
      [['user', 'register'], '--email is required'],
      [['user', 'login', '--password'], '--password needs --email'],
      [['user', 'login', '--device', '--browser'], 'choose one of --device, --browser'],
      [['user', 'login', '--device', '--email', 'a@example.org'], '--email is only for'],
      [['user', 'login', '--provider', 'myspace'], '--provider must be one of cilogon'],
      [['user', 'login', '--device', '--provider', 'cilogon'], 'use it with --browser'],
    ]
    for (const [i, [args, message]] of cases.entries()) {
      const run = await cli(args, { input: `${PASSWORD}\n`, process: i < 2 })
      expect(run.code, run.stderr).toBe(2)
      expect(run.stderr).toContain(message)
      expect(run.stderr).toContain(`Usage: tessera ${args.slice(0, 2).join(' ')}`)
    }
  })

  it('an unreachable TESSERA_URL exits 1 with a message naming it', async () => {
    const url = `http://127.0.0.1:${await freePort()}`
    for (const args of [
      ['user', 'login', '--email', 'a@example.org'],
      ['user', 'register', '--email', 'a@example.org'],
    ]) {
      const run = await cli(args, { url, input: `${PASSWORD}\n` })
      expect(run.code).toBe(1)
      expect(run.stderr).toContain(url)
      expect(run.stderr).toContain('TESSERA_URL')
      expect(run.stderr).not.toContain(PASSWORD)
    }
    // Stored tokens for an unreachable server are kept (the logout can be retried).
    await registerAndLoginCli()
    const here = entry()!
    const file = { version: 1, servers: { [url]: { ...here, url } } }
    writeFileSync(credentialsFile(), JSON.stringify(file), { mode: 0o600 })
    for (const command of ['whoami', 'logout']) {
      const run = await cli(['user', command], { url })
      expect(run.code).toBe(1)
      expect(run.stderr).toContain(`cannot reach Tessera at ${url} (TESSERA_URL)`)
    }
    expect(entry(url)).toBeDefined()
  })

  it('TESSERA_URL must be an http(s) URL', async () => {
    for (const url of ['ftp://example.org', 'not a url', 'http://user:secret@example.org']) {
      const run = await cli(['user', 'whoami'], { url, process: true })
      expect(run.code).toBe(1)
      expect(run.stderr).toContain('TESSERA_URL')
      expect(run.stderr).not.toContain('secret')
    }
  })

  it('a corrupt credentials file is reported, not overwritten', async () => {
    ok(await cli(['user', 'logout'])) // nothing stored: fine
    mkdirSync(credentialsDir(), { recursive: true, mode: 0o700 })
    writeFileSync(credentialsFile(), '{not json', { mode: 0o600 })
    const run = await cli(['user', 'whoami'])
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(credentialsFile())
    expect(readFileSync(credentialsFile(), 'utf8')).toBe('{not json')
  })
})
