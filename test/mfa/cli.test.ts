import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import { enrolTotp, mfaTicketOf, totpCode } from '../support/mfa.js'
import { login, PASSWORD, registerAndLogin } from '../support/users.js'

describe('the CLI and second factors [sqlite]', { timeout: 60_000 }, () => {
  let app: TestApp
  let root: string
  let count = 0
  beforeAll(async () => {
    app = await makeTestApp()
    root = mkdtempSync(join(tmpdir(), 'tessera-mfa-cli-'))
  })
  afterAll(async () => {
    await app?.close()
    rmSync(root, { recursive: true, force: true })
  })

  async function enrolledUser() {
    const registered = await registerAndLogin(app)
    const enrolled = await enrolTotp(app, registered.tokens.access_token)
    app.clock.advance(60_000)
    count += 1
    const env = { TESSERA_URL: app.url, XDG_CONFIG_HOME: join(root, `config-${count}`) }
    return { ...registered, ...enrolled, env }
  }

  const loginArgs = (email: string) => ['user', 'login', '--password', '--email', email]

  it('tessera user login prompts for the code after the password', async () => {
    const user = await enrolledUser()
    const run = await runTesseraInProcess(loginArgs(user.email), {
      env: user.env,
      input: `${PASSWORD}\n${totpCode(app, user.secret)}\n`,
    })
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain(`as ${user.email}`)
    const whoami = await runTesseraInProcess(['user', 'whoami'], { env: user.env })
    expect(whoami.code, whoami.stderr).toBe(0)
  })

  it('a recovery code works at the prompt too; a wrong code fails the login', async () => {
    const user = await enrolledUser()
    const wrong = await runTesseraInProcess(loginArgs(user.email), {
      env: user.env,
      input: `${PASSWORD}\n000000x\n`,
    })
    expect(wrong.code).not.toBe(0)
    expect(wrong.stderr).toContain('invalid_mfa_code')
    const run = await runTesseraInProcess(loginArgs(user.email), {
      env: user.env,
      input: `${PASSWORD}\n${user.recoveryCodes[0]}\n`,
    })
    expect(run.code, run.stderr).toBe(0)
  })

  it('tessera user reset-mfa on the server host removes the second factors', async () => {
    const user = await enrolledUser()
    await mfaTicketOf(
      await app.request('/v1/user/auth/login', { json: { email: user.email, password: PASSWORD } }),
    )
    const run = await runTesseraInProcess(['user', 'reset-mfa', '--email', user.email], {
      env: { DATABASE_URL: app.databaseUrl, LOG_LEVEL: 'silent' },
    })
    expect(run.code, run.stderr).toBe(0)
    await login(app, user.email)
  })
})
