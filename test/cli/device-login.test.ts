/**
 * `tessera user login --device` as a child process against a real server (README, "Command
 * line"): it prints the URL, the code and a QR code, waits, and holds tokens once the code is
 * approved. Here the approval is the domain call the verification page makes, with a real
 * session of the approving user; device-page.test.ts approves through the page in Chromium.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import { approveAs, denyAs } from '../support/device.js'
import { freePort, startCli } from '../support/process.js'
import { registerAndLogin } from '../support/users.js'

const USER_CODE = /enter the code ([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})/

describe('tessera user login --device [sqlite]', { timeout: 60_000 }, () => {
  let app: TestApp
  let root: string
  let count = 0

  beforeAll(async () => {
    // The issuer is the server's real address, so the printed URL is one a browser could open.
    const port = await freePort()
    app = await makeTestApp({
      env: {
        PORT: String(port),
        TESSERA_ISSUER: `http://127.0.0.1:${port}`,
        RATE_LIMIT_REGISTER_PER_IP: '0',
        RATE_LIMIT_LOGIN_PER_IP: '0',
      },
    })
    root = mkdtempSync(join(tmpdir(), 'tessera-device-cli-'))
  })
  afterAll(async () => {
    await app?.close()
    if (root !== undefined) rmSync(root, { recursive: true, force: true })
  })

  /** The client's environment: this server, a fresh config directory, no display. */
  function clientEnv(extra: Record<string, string> = {}): Record<string, string> {
    count += 1
    return { TESSERA_URL: app.url, XDG_CONFIG_HOME: join(root, `config-${count}`), ...extra }
  }

  it('prints URL, code and QR code; once approved it holds tokens and whoami works', async () => {
    const env = clientEnv()
    const cli = startCli(['user', 'login', '--device'], { env })
    await cli.waitFor(/Waiting for the approval/)
    const stderr = cli.stderr()
    const userCode = USER_CODE.exec(stderr)?.[1]
    expect(stderr).toContain(`To log in, open ${app.url}/device`)
    expect(stderr).toContain(`it opens ${app.url}/device?user_code=${userCode}`)
    // qrcode-terminal's small rendering: half-block characters.
    expect(stderr).toMatch(/[▀▄█]{10,}/)
    // Nothing on stdout until the login is done; no token anywhere in the output.
    expect(cli.stdout()).toBe('')

    const owner = await registerAndLogin(app)
    await approveAs(app.server.tessera, owner.tokens.access_token, userCode!)
    expect(await cli.exited, cli.stderr()).toBe(0)
    expect(cli.stdout()).toBe(`Logged in to ${app.url} as ${owner.email}\n`)
    expect(cli.stdout() + cli.stderr()).not.toMatch(/tessera_rt_|v4\.public\./)

    const stored = JSON.parse(
      readFileSync(join(env.XDG_CONFIG_HOME!, 'tessera', 'credentials.json'), 'utf8'),
    ) as { servers: Record<string, { refresh_token: string }> }
    expect(stored.servers[app.url]?.refresh_token).toMatch(/^tessera_rt_/)
    const whoami = await runTesseraInProcess(['user', 'whoami'], { env })
    expect(whoami.code, whoami.stderr).toBe(0)
    expect(whoami.stdout).toContain(owner.email)
    expect(whoami.stdout).toMatch(/account_type:\s+regular/)
    expect(whoami.stdout).toMatch(/verified:\s+no/)
    // The CLI's session is a device login of its own, with the CLI's user agent.
    const session = await app.server.tessera.db
      .selectFrom('sessions')
      .innerJoin('audit_events', 'audit_events.session_id', 'sessions.id')
      .select(['sessions.user_agent', 'audit_events.detail'])
      .where('sessions.user_id', '=', owner.user.id)
      .where('audit_events.event', '=', 'login_succeeded')
      // With the approving session's methods (README, "Second factors").
      .where('audit_events.detail', '=', JSON.stringify({ method: 'device', amr: 'pwd' }))
      .executeTakeFirstOrThrow()
    expect(session.user_agent).toBe('tessera-cli')
  })

  it('a denied code ends the command with exit 1 and says so', async () => {
    const cli = startCli(['user', 'login', '--device'], { env: clientEnv() })
    const [, userCode] = await cli.waitFor(USER_CODE)
    const owner = await registerAndLogin(app)
    await denyAs(app.server.tessera, owner.tokens.access_token, userCode!)
    expect(await cli.exited).toBe(1)
    expect(cli.stderr()).toContain('the login was denied')
  })

  it('Ctrl-C while waiting exits 130 with one clean line', async () => {
    // No method given and no display: a device login.
    const cli = startCli(['user', 'login'], { env: clientEnv() })
    await cli.waitFor(USER_CODE)
    cli.kill('SIGINT')
    expect(await cli.exited).toBe(130)
    const after = cli.stderr().slice(cli.stderr().indexOf('Waiting for the approval'))
    expect(after).toMatch(/login cancelled\n$/)
    expect(cli.stderr()).not.toMatch(/\n\s+at |Error/)
  })

  it('--browser without a browser to open falls back to the device login', async () => {
    const cli = startCli(['user', 'login', '--browser', '--provider', 'github'], {
      env: clientEnv({ BROWSER: join(root, 'no-such-browser') }),
    })
    await cli.waitFor(USER_CODE)
    expect(cli.stderr()).toContain('Could not open a browser.\nLogging in with a code instead.')
    cli.kill('SIGINT')
    expect(await cli.exited).toBe(130)
  })

  it('--browser without --provider opens the sign-in page, back to its loopback port', async () => {
    const opened = join(root, 'opened')
    const script = join(root, 'record-url')
    writeFileSync(script, `#!/bin/sh\necho "$1" > '${opened}'\n`, { mode: 0o755 })
    const cli = startCli(['user', 'login', '--browser'], { env: clientEnv({ BROWSER: script }) })
    await cli.waitFor(/Waiting for the browser/)
    const url = new URL(readFileSync(opened, 'utf8').trim())
    expect(`${url.origin}${url.pathname}`).toBe(`${app.url}/login`)
    expect(url.searchParams.get('return_to')).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/tessera\/callback$/,
    )
    expect(url.searchParams.get('code_challenge_method')).toBe('S256')
    // The sign-in page accepts that loopback return_to (any port, RFC 8252 §7.3).
    expect((await fetch(url, { headers: { accept: 'text/html' } })).status).toBe(200)
    cli.kill('SIGINT')
    expect(await cli.exited).toBe(130)
  })
})
