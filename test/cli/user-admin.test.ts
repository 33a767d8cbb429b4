import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp, testKeyEnv } from '../support/app.js'
import { runTesseraInProcess } from '../support/cli.js'
import { dialects } from '../support/dialects.js'
import { runCli } from '../support/process.js'
import { expectProblem, login, PASSWORD, registerAndLogin, uniqueEmail } from '../support/users.js'

/** `tessera user ...` on the server host: list, show, enable, disable, set-type, delete. */
for (const dialect of dialects()) {
  describe(`tessera user commands [${dialect}]`, { timeout: 90_000 }, () => {
    let app: TestApp
    let env: Record<string, string>
    const tessera = (args: string[], input?: string) =>
      runTesseraInProcess(args, { env, ...(input === undefined ? {} : { input }) })
    const auditDetails = async (userId: string, event: string) =>
      (
        await app.server.tessera.db
          .selectFrom('audit_events')
          .select('detail')
          .where('user_id', '=', userId)
          .where('event', '=', event)
          .execute()
      ).map((e) => JSON.parse(e.detail!) as unknown)

    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { RATE_LIMIT_REGISTER_PER_IP: '0', RATE_LIMIT_LOGIN_PER_IP: '0' },
      })
      env = { DATABASE_URL: app.databaseUrl, LOG_LEVEL: 'silent', ...testKeyEnv(app.databaseUrl) }
    })
    afterAll(() => app.close())

    it('user list prints a table and --json lines, with the API filters', async () => {
      const tag = `cli${process.pid}x${Date.now() % 100000}`
      const a = await registerAndLogin(app, `${tag}.a@example.org`)
      const b = await registerAndLogin(app, `${tag}.b@example.org`)
      // As a process: the installed command.
      const table = await runCli(['user', 'list', '--search', tag], {
        databaseUrl: app.databaseUrl,
      })
      expect(table.code, table.stderr).toBe(0)
      const lines = table.stdout.trim().split('\n')
      expect(lines[0]).toMatch(/^EMAIL\s+TYPE\s+VERIFIED\s+EMAIL OK\s+DISABLED\s+CREATED\s+ID$/)
      expect(
        lines
          .slice(1)
          .map((l) => l.split(/\s+/)[0])
          .sort(),
      ).toEqual([a.email, b.email].sort())

      expect((await tessera(['user', 'disable', b.email, '--reason', 'left'])).code).toBe(0)
      const json = await tessera(['user', 'list', '--search', tag, '--disabled', 'true', '--json'])
      expect(json.code, json.stderr).toBe(0)
      const rows = json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { email: string; disabled: boolean })
      expect(rows).toEqual([expect.objectContaining({ email: b.email, disabled: true })])
      for (const bad of [
        ['--disabled', 'yes'],
        ['--type', 'admin'],
        ['--created-after', 'yesterday'],
      ]) {
        const run = await tessera(['user', 'list', ...bad])
        expect(run.code, bad.join(' ')).toBe(2)
      }
    })

    it('user show prints the account, sessions and events', async () => {
      const a = await registerAndLogin(app)
      const run = await tessera(['user', 'show', a.email.toUpperCase()])
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toContain(`email           ${a.email} (not verified)`)
      expect(run.stdout).toMatch(/live sessions\s+1/)
      expect(run.stdout).toContain('user_registered')
      const json = JSON.parse((await tessera(['user', 'show', a.email, '--json'])).stdout) as {
        user: { id: string }
      }
      expect(json.user.id).toBe(a.user.id)
      const unknown = await tessera(['user', 'show', 'nobody@example.org'])
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain('No user with email nobody@example.org')
      expect((await tessera(['user', 'show'])).code).toBe(2)
    })

    it('user disable and user enable, by EMAIL or --email, audited as cli', async () => {
      const a = await registerAndLogin(app)
      const off = await tessera(['user', 'disable', '--email', a.email])
      expect(off.code, off.stderr).toBe(0)
      await expectProblem(
        await app.request('/v1/user/auth/login', { json: { email: a.email, password: PASSWORD } }),
        403,
        'account_disabled',
      )
      const on = await tessera(['user', 'enable', a.email, '--reason', 'came back'])
      expect(on.code, on.stderr).toBe(0)
      expect(on.stdout).toContain(`${a.email} is enabled`)
      await login(app, a.email)
      expect(await auditDetails(a.user.id, 'user_enabled')).toEqual([
        { by: 'cli', reason: 'came back' },
      ])
      expect(await auditDetails(a.user.id, 'user_disabled')).toEqual([{ by: 'cli', reason: null }])
    })

    it('user set-type needs a known TYPE and a --reason', async () => {
      const a = await registerAndLogin(app)
      expect((await tessera(['user', 'set-type', a.email, 'service'])).code).toBe(2)
      expect((await tessera(['user', 'set-type', a.email, 'admin', '--reason', 'x'])).code).toBe(2)
      const run = await tessera(['user', 'set-type', a.email, 'service', '--reason', 'robot'])
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toContain('is now service')
      expect(await auditDetails(a.user.id, 'account_type_changed')).toEqual([
        { by: 'cli', from: 'regular', to: 'service', reason: 'robot' },
      ])
    })

    it('user delete asks for the address again unless --yes, then erases', async () => {
      const a = await registerAndLogin(app)
      const refused = await runCli(['user', 'delete', a.email], {
        databaseUrl: app.databaseUrl,
        input: 'someone-else@example.org\n',
      })
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain('nothing was deleted')
      const none = await tessera(['user', 'delete', a.email])
      expect(none.code).toBe(1)
      const users = () =>
        app.server.tessera.db.selectFrom('users').select('id').where('id', '=', a.user.id).execute()
      expect(await users()).toHaveLength(1)

      const confirmed = await runCli(['user', 'delete', a.email], {
        databaseUrl: app.databaseUrl,
        input: `${a.email.toUpperCase()}\n`,
      })
      expect(confirmed.code, confirmed.stderr).toBe(0)
      expect(await users()).toHaveLength(0)
      expect(await auditDetails(a.user.id, 'user_deleted')).toEqual([{ by: 'cli' }])
      await expectProblem(
        await app.request('/v1/user/auth/refresh', {
          json: { refresh_token: a.tokens.refresh_token },
        }),
        401,
        'invalid_refresh_token',
      )

      const b = await registerAndLogin(app, uniqueEmail('yes'))
      const yes = await tessera(['user', 'delete', b.email, '--yes'])
      expect(yes.code, yes.stderr).toBe(0)
      expect(yes.stdout).toContain('is deleted')
    })
  })
}
