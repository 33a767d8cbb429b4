/**
 * Secrets at rest (README, "Keys" and "Databases"): the SQLite database and its journals are
 * private to the server's user, and signing keys are never stored in clear by default: without
 * KEY_ENCRYPTION_KEY an SQLite deployment generates a key into a 0600 file beside the database,
 * and PostgreSQL refuses to start.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { systemClock } from '../../src/clock.js'
import { type Env, loadConfig } from '../../src/config/index.js'
import { connectDatabase } from '../../src/db/connect.js'
import { migrateOrThrow } from '../../src/db/migrate.js'
import { ensureActiveKey } from '../../src/keys/signing-keys.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { createTestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { requestTo } from '../support/http.js'
import { PASSWORD, uniqueEmail } from '../support/users.js'

const mode = (path: string) => statSync(path).mode & 0o777

function kidOf(token: string): string {
  const footer = token.split('.')[3]!
  return (JSON.parse(Buffer.from(footer, 'base64url').toString('utf8')) as { kid: string }).kid
}

/** Starts a server, records what it logs, registers and logs a user in (so the WAL is written). */
async function startAndLogin(env: Env) {
  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) })
  const server = await startServer(
    loadConfig({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env }),
    { logger },
  )
  const request = requestTo(server.url)
  const email = uniqueEmail('at-rest')
  expect(
    (await request('/v1/user/auth/register', { json: { email, password: PASSWORD } })).status,
  ).toBe(201)
  const res = await request('/v1/user/auth/login', { json: { email, password: PASSWORD } })
  expect(res.status).toBe(200)
  const token = ((await res.json()) as { access_token: string }).access_token
  const me = await request('/v1/user/me', { token })
  expect(me.status).toBe(200)
  return { server, token, lines }
}

async function secretKeys(server: RunningServer): Promise<string[]> {
  const rows = await server.tessera.db.selectFrom('signing_keys').select('secret_key').execute()
  return rows.map((r) => r.secret_key)
}

for (const dialect of dialects()) {
  if (dialect === 'sqlite') {
    describe('SQLite files and the generated key-encryption key [sqlite]', () => {
      let root: string
      const servers: RunningServer[] = []
      const fresh = () => {
        root = mkdtempSync(join(tmpdir(), 'tessera-at-rest-'))
        return join(root, 'data', 'tessera.db')
      }
      afterEach(async () => {
        for (const server of servers.splice(0)) await server.close()
        rmSync(root, { recursive: true, force: true })
      })

      it('a first start makes the directory 0700 and its files 0600', async () => {
        // The database, WAL and SHM, and a key file whose place it logs.
        const db = fresh()
        const { server, lines } = await startAndLogin({ DATABASE_URL: `sqlite:${db}` })
        servers.push(server)
        expect(mode(join(root, 'data'))).toBe(0o700)
        for (const file of [db, `${db}-wal`, `${db}-shm`, `${db}.kek`]) {
          expect(existsSync(file), file).toBe(true)
          expect(mode(file), file).toBe(0o600)
        }
        expect(readFileSync(`${db}.kek`, 'utf8').trim().length).toBeGreaterThanOrEqual(32)
        const info = lines.map((l) => JSON.parse(l) as { level: number; msg: string })
        expect(info.some((l) => l.level === 30 && l.msg.includes(`${db}.kek`))).toBe(true)
        // Keys are encrypted envelopes by default, never PASERKs in clear.
        for (const secret of await secretKeys(server)) {
          expect(secret.startsWith('enc.v1.')).toBe(true)
          expect(secret).not.toContain('k4.secret')
        }
      })

      it('a second start reuses the key file and the keys; old tokens still verify', async () => {
        const db = fresh()
        const first = await startAndLogin({ DATABASE_URL: `sqlite:${db}` })
        await first.server.close()
        const key = readFileSync(`${db}.kek`, 'utf8')
        const second = await startAndLogin({ DATABASE_URL: `sqlite:${db}` })
        servers.push(second.server)
        expect(readFileSync(`${db}.kek`, 'utf8')).toBe(key)
        expect(kidOf(second.token)).toBe(kidOf(first.token))
        const me = await requestTo(second.server.url)('/v1/user/me', { token: first.token })
        expect(me.status).toBe(200)
        expect(second.lines.some((l) => l.includes('generated a key-encryption key'))).toBe(false)
      })

      it('a database with keys in clear is encrypted in place at start', async () => {
        // The key and its tokens stay the same.
        const db = fresh()
        // A database from before encryption by default: the key written without a key-encryption
        // key.
        const handle = await connectDatabase(`sqlite:${db}`)
        await migrateOrThrow(handle.db)
        const clear = await ensureActiveKey({
          db: handle.db,
          clock: systemClock,
          config: { accessTokenTtl: 900, keyEncryptionKey: undefined },
        })
        await handle.close()
        expect(clear.secret_key.startsWith('k4.secret.')).toBe(true)

        const { server, token, lines } = await startAndLogin({ DATABASE_URL: `sqlite:${db}` })
        servers.push(server)
        expect(kidOf(token)).toBe(clear.kid)
        const secrets = await secretKeys(server)
        expect(secrets).toHaveLength(1)
        expect(secrets[0]!.startsWith('enc.v1.')).toBe(true)
        expect(lines.some((l) => l.includes('encrypted 1 signing key(s)'))).toBe(true)
      })

      it('files found readable by others are tightened to 0600, with a warning', async () => {
        const db = fresh()
        const first = await startAndLogin({ DATABASE_URL: `sqlite:${db}` })
        await first.server.close()
        for (const file of [db, `${db}.kek`]) chmodSync(file, 0o644)
        const { server, lines } = await startAndLogin({ DATABASE_URL: `sqlite:${db}` })
        servers.push(server)
        for (const file of [db, `${db}-wal`, `${db}-shm`, `${db}.kek`])
          expect(mode(file), file).toBe(0o600)
        const warnings = lines
          .map((l) => JSON.parse(l) as { level: number; msg: string })
          .filter((l) => l.level === 40)
        expect(warnings.some((l) => l.msg.includes(`${db} was readable`))).toBe(true)
        expect(warnings.some((l) => l.msg.includes(`${db}.kek was readable`))).toBe(true)
      })

      it('KEY_ENCRYPTION_KEY_FILE names the key to use instead of generating one', async () => {
        const db = fresh()
        mkdirSync(join(root, 'secrets'), { mode: 0o700 })
        const keyFile = join(root, 'secrets', 'kek')
        writeFileSync(keyFile, `${'q'.repeat(40)}\n`, { mode: 0o600 })
        const { server } = await startAndLogin({
          DATABASE_URL: `sqlite:${db}`,
          KEY_ENCRYPTION_KEY_FILE: keyFile,
        })
        servers.push(server)
        expect(existsSync(`${db}.kek`)).toBe(false)
        expect(server.tessera.config.keyEncryptionKey).toBe('q'.repeat(40))
        expect(() =>
          loadConfig({ KEY_ENCRYPTION_KEY: 'k'.repeat(32), KEY_ENCRYPTION_KEY_FILE: keyFile }),
        ).toThrow(/KEY_ENCRYPTION_KEY_FILE/)
      })

      it('a KEY_ENCRYPTION_KEY_FILE others can read is used as it is, with a warning', async () => {
        // The operator's own file, not one Tessera generated.
        // A Docker or Kubernetes secret is 0444/0644 and often not the server's to chmod.
        const db = fresh()
        mkdirSync(join(root, 'shared-secrets'), { mode: 0o755 })
        const keyFile = join(root, 'shared-secrets', 'kek')
        writeFileSync(keyFile, `${'s'.repeat(40)}\n`, { mode: 0o644 })
        const { server, lines } = await startAndLogin({
          DATABASE_URL: `sqlite:${db}`,
          KEY_ENCRYPTION_KEY_FILE: keyFile,
        })
        servers.push(server)
        expect(mode(keyFile)).toBe(0o644)
        expect(server.tessera.config.keyEncryptionKey).toBe('s'.repeat(40))
        const warnings = lines
          .map((l) => JSON.parse(l) as { level: number; msg: string })
          .filter((l) => l.level === 40)
        expect(warnings.some((l) => l.msg.includes(`${keyFile} is readable by other users`))).toBe(
          true,
        )
      })
    })
  }

  if (dialect === 'postgres') {
    describe('PostgreSQL needs a configured key-encryption key [postgres]', () => {
      it('refuses to start without a key-encryption key; starts with the file', async () => {
        // KEY_ENCRYPTION_KEY or KEY_ENCRYPTION_KEY_FILE.
        const database = await createTestDatabase('postgres')
        const dir = mkdtempSync(join(tmpdir(), 'tessera-kek-'))
        try {
          const env = {
            HOST: '127.0.0.1',
            PORT: '0',
            DATABASE_URL: database.url,
            LOG_LEVEL: 'silent',
          }
          await expect(startServer(loadConfig(env))).rejects.toThrow(
            /KEY_ENCRYPTION_KEY or KEY_ENCRYPTION_KEY_FILE/,
          )
          const keyFile = join(dir, 'kek')
          writeFileSync(keyFile, 'p'.repeat(40), { mode: 0o600 })
          const { server } = await startAndLogin({ ...env, KEY_ENCRYPTION_KEY_FILE: keyFile })
          try {
            for (const secret of await secretKeys(server))
              expect(secret.startsWith('enc.v1.')).toBe(true)
          } finally {
            await server.close()
          }
        } finally {
          rmSync(dir, { recursive: true, force: true })
          await database.drop()
        }
      })
    })
  }
}
