/**
 * A device login across replicas (README, "Running several replicas"): the device starts it on
 * one server, the user approves through another, the device polls a third time anywhere. Two
 * servers share one database and nothing else; on PostgreSQL this is the deployment the README
 * describes, on SQLite two processes' worth of servers on one file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.js'
import { type RunningServer, startServer } from '../../src/server.js'
import { FAST_HASHING, testKeyEnv } from '../support/app.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import {
  approveAs,
  expectOAuthError,
  poll,
  type Requester,
  startDevice,
} from '../support/device.js'
import { dialects } from '../support/dialects.js'
import { requestTo } from '../support/http.js'
import { PASSWORD, type TokenPairBody, tokenPairOf, uniqueEmail } from '../support/users.js'

interface Replica extends Requester {
  server: RunningServer
}

async function startReplica(databaseUrl: string): Promise<Replica> {
  const server = await startServer(
    loadConfig({
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: 'silent',
      TESSERA_ISSUER: 'https://id.example.org',
      RATE_LIMIT_LOGIN_PER_IP: '0',
      RATE_LIMIT_REGISTER_PER_IP: '0',
      ...testKeyEnv(databaseUrl),
    }),
    { passwordHashing: FAST_HASHING },
  )
  return { server, request: requestTo(server.url) }
}

async function userAt(replica: Replica): Promise<TokenPairBody> {
  const email = uniqueEmail('device-replica')
  const registered = await replica.request('/v1/user/auth/register', {
    json: { email, password: PASSWORD },
  })
  expect(registered.status).toBe(201)
  return tokenPairOf(
    await replica.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
  )
}

for (const dialect of dialects()) {
  describe(`device login on two replicas of one database [${dialect}]`, () => {
    let database: TestDatabase
    let a: Replica
    let b: Replica

    beforeAll(async () => {
      database = await createTestDatabase(dialect)
      // One after the other: the first creates the schema and the signing key.
      a = await startReplica(database.url)
      b = await startReplica(database.url)
    })
    afterAll(async () => {
      await Promise.all([a?.server.close(), b?.server.close()])
      await database?.drop()
    })

    it('started on A, approved through B, redeemed on B; A then says invalid_grant', async () => {
      const started = await startDevice(a)
      await expectOAuthError(await poll(b, started.device_code), 'authorization_pending')
      const owner = await userAt(a)
      await approveAs(b.server.tessera, owner.access_token, started.user_code)
      const pair = await tokenPairOf(await poll(b, started.device_code))
      // The pair is as good on A as on B.
      expect((await a.request('/v1/user/me', { token: pair.access_token })).status).toBe(200)
      await expectOAuthError(await poll(a, started.device_code), 'invalid_grant')
    })

    it('polls racing on both replicas after approval give exactly one pair', async () => {
      const started = await startDevice(b)
      await approveAs(a.server.tessera, (await userAt(b)).access_token, started.user_code)
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) => poll(i % 2 === 0 ? a : b, started.device_code)),
      )
      const bodies = await Promise.all(answers.map((r) => r.json() as Promise<{ error?: string }>))
      expect(answers.filter((r) => r.status === 200)).toHaveLength(1)
      expect(bodies.filter((body) => body.error === 'invalid_grant')).toHaveLength(9)
    })
  })
}
