/**
 * The operator's commands about the data itself (README, "Command line", "Backups"): commands
 * refuse a database that does not exist instead of creating one, create-superuser refuses a
 * second superuser without --force, and tessera backup copies a database that is being served
 * into one a server starts on.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRUNED_TABLES } from '../../src/retention/prune.js'
import { runTesseraInProcess } from '../support/cli.js'
import { TEST_POSTGRES_URL } from '../support/postgres.js'
import { runCli, startTesseraProcess } from '../support/process.js'
import { PASSWORD, type TokenPairBody, uniqueEmail } from '../support/users.js'

const KEY = 'operations-test-key-encryption-key-0123456789'

describe('server commands refuse a database that does not exist', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-ops-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const commands = [
    ['keys', 'list'],
    ['keys', 'rotate'],
    ['user', 'promote', '--email', 'a@example.org'],
    ['client', 'list'],
    ['prune'],
    ['audit', 'export', '--since', '1d'],
    ['backup', 'copy.db'],
  ]
  for (const args of commands) {
    it(`tessera ${args.join(' ')}: exit 1 naming the path, and no file made`, async () => {
      const file = join(dir, 'data', 'tessera.db')
      const run = await runTesseraInProcess(args, {
        env: { DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'silent' },
      })
      expect(run.code, run.stderr).toBe(1)
      expect(run.stderr).toContain(`No database at ${file}`)
      expect(run.stderr).toContain('tessera migrate')
      expect(existsSync(file)).toBe(false)
      expect(existsSync(join(dir, 'data'))).toBe(false)
    })
  }

  it('migrate still creates it, and then the commands run', async () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'made', 't.db')}`, LOG_LEVEL: 'silent' }
    expect((await runTesseraInProcess(['keys', 'list'], { env })).code).toBe(1)
    expect((await runTesseraInProcess(['migrate'], { env })).code).toBe(0)
    const listed = await runTesseraInProcess(['keys', 'list'], { env })
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stdout).toMatch(/^active +k4\.pid\./)
  })
})

describe('user create-superuser refuses a second superuser unless --force', () => {
  it('refuses without --force, creates with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-ops-'))
    try {
      const env = { DATABASE_URL: `sqlite:${join(dir, 't.db')}`, LOG_LEVEL: 'silent' }
      expect((await runTesseraInProcess(['migrate'], { env })).code).toBe(0)
      const create = (email: string, ...more: string[]) =>
        runTesseraInProcess(['user', 'create-superuser', '--email', email, ...more], {
          env,
          input: `${PASSWORD}\n`,
        })
      expect((await create('first@example.org')).code).toBe(0)
      const refused = await create('second@example.org')
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain('A superuser exists already (first@example.org)')
      expect(refused.stderr).toContain('--force')
      const forced = await create('second@example.org', '--force')
      expect(forced.code, forced.stderr).toBe(0)
      expect(forced.stdout).toContain('Created superuser second@example.org')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('tessera prune and tessera audit', () => {
  it('prune prints the rows deleted per table; audit alone prints its help', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-ops-'))
    try {
      const env = { DATABASE_URL: `sqlite:${join(dir, 't.db')}`, LOG_LEVEL: 'silent' }
      expect((await runTesseraInProcess(['migrate'], { env })).code).toBe(0)
      const pruned = await runTesseraInProcess(['prune'], { env })
      expect(pruned.code, pruned.stderr).toBe(0)
      for (const table of PRUNED_TABLES)
        expect(pruned.stdout).toMatch(new RegExp(`^${table} +0$`, 'm'))
      const audit = await runTesseraInProcess(['audit'], { env })
      expect(audit.code).toBe(2)
      expect(audit.stderr).toContain('Usage: tessera audit export --since T')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('tessera backup [sqlite]', { timeout: 120_000 }, () => {
  it('copies a database being served and refreshed; a server starts on the copy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-backup-'))
    const databaseUrl = `sqlite:${join(dir, 'live.db')}`
    const copy = join(dir, 'copy.db')
    const env = { KEY_ENCRYPTION_KEY: KEY, RATE_LIMIT_REFRESH_PER_SESSION: '0' }
    const server = await startTesseraProcess({ databaseUrl, env })
    let restored: Awaited<ReturnType<typeof startTesseraProcess>> | undefined
    try {
      const email = uniqueEmail('backup')
      const registered = await server.request('/v1/user/auth/register', {
        json: { email, password: PASSWORD },
      })
      expect(registered.status).toBe(201)
      const login = await server.request('/v1/user/auth/login', {
        json: { email, password: PASSWORD },
      })
      let pair = (await login.json()) as TokenPairBody

      // Refreshes go on during the backup: every one must succeed.
      let refreshing = true
      let refreshes = 0
      const load = (async () => {
        while (refreshing) {
          const res = await server.request('/v1/user/auth/refresh', {
            json: { refresh_token: pair.refresh_token },
          })
          expect(res.status, await res.clone().text()).toBe(200)
          pair = (await res.json()) as TokenPairBody
          refreshes++
        }
      })()
      while (refreshes < 3) await new Promise((r) => setTimeout(r, 20))
      const backup = await runCli(['backup', copy], { databaseUrl, env })
      refreshing = false
      await load
      expect(backup.code, backup.stderr).toBe(0)
      expect(backup.stdout).toContain(`to ${copy}`)
      expect(statSync(copy).mode & 0o777).toBe(0o600)

      // Never over an existing file.
      const again = await runCli(['backup', copy], { databaseUrl, env })
      expect(again.code).toBe(1)
      expect(again.stderr).toContain('exists')

      // The restore: a server on the copy knows the account made before the backup.
      await server.stop()
      restored = await startTesseraProcess({ databaseUrl: `sqlite:${copy}`, env })
      const onCopy = await restored.request('/v1/user/auth/login', {
        json: { email, password: PASSWORD },
      })
      expect(onCopy.status, await onCopy.clone().text()).toBe(200)
    } finally {
      await server.stop()
      await restored?.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('on PostgreSQL it names pg_dump instead', async () => {
    const run = await runTesseraInProcess(['backup', join(tmpdir(), 'never.db')], {
      env: { DATABASE_URL: TEST_POSTGRES_URL, KEY_ENCRYPTION_KEY: KEY, LOG_LEVEL: 'silent' },
    })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('pg_dump')
  })
})
