/**
 * Personal access tokens, job tokens, audiences and scopes (README, "Scripts, pipelines and
 * services"), against the real server and two real example catalogs, one per audience: a PAT
 * exchanged for an access token works at its own service within its scopes and fails at the
 * other; revoking it ends its access tokens; revoked, expired and disabled PATs fail with their
 * codes; the secret is in one answer only, never in a list or a log line.
 */

import { createHash, randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { createLoginCode } from '../../src/federation/flow.js'
import { retireWindowMs } from '../../src/keys/signing-keys.js'
import { PAT_PATTERN } from '../../src/personal-tokens/secret.js'
import { revocationRetentionMs } from '../../src/revocations/log.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { type CatalogProcess, startCatalog } from '../support/catalog.js'
import { approveAs, CLI_CLIENT, DEVICE_GRANT, postForm, startDevice } from '../support/device.js'
import { dialects } from '../support/dialects.js'
import {
  expectProblem,
  login,
  PASSWORD,
  refresh,
  register,
  tokenPairOf,
  uniqueEmail,
} from '../support/users.js'

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const PAT_TYPE = 'urn:tessera:params:oauth:token-type:pat'
const SERVICE_SECRET = 'personal-tokens-test-service-secret'

interface CreatedPat {
  id: string
  kind: string
  name: string
  prefix: string
  audience: string
  scopes: string[]
  token: string
  expires_at: string
}

interface Exchanged {
  access_token: string
  issued_token_type: string
  token_type: string
  expires_in: number
  scope: string
  refresh_token?: string
}

function claimsOf(token: string): Record<string, unknown> {
  const body = Buffer.from(token.split('.')[2]!, 'base64url')
  return JSON.parse(body.subarray(0, body.length - 64).toString('utf8')) as Record<string, unknown>
}

for (const dialect of dialects()) {
  describe(`personal access tokens [${dialect}]`, () => {
    let app: TestApp
    let seqdb: CatalogProcess
    let syndb: CatalogProcess
    const logLines: string[] = []
    /** Every secret and token this file sees, to look for in the logs at the end. */
    const secrets: string[] = []

    beforeAll(async () => {
      const logger = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) })
      app = await makeTestApp({
        dialect,
        logger,
        env: {
          AUDIENCES: 'syndb,seqdb',
          SERVICE_SECRET,
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_REGISTER_PER_IP: '0',
        },
      })
      ;[seqdb, syndb] = await Promise.all([
        startCatalog(app.url, { TESSERA_AUDIENCE: 'seqdb' }),
        startCatalog(app.url, { TESSERA_AUDIENCE: 'syndb' }),
      ])
    }, 60_000)
    afterAll(async () => {
      seqdb?.stop()
      syndb?.stop()
      await app?.close()
    })

    async function account() {
      const { email, user } = await register(app, uniqueEmail('pat'))
      const tokens = await login(app, email)
      secrets.push(tokens.access_token, tokens.refresh_token)
      return { email, user, tokens }
    }

    async function createPat(token: string, body: Record<string, unknown>): Promise<CreatedPat> {
      const res = await app.request('/v1/user/tokens', { method: 'POST', token, json: body })
      expect(res.status, await res.clone().text()).toBe(201)
      const created = (await res.json()) as CreatedPat
      secrets.push(created.token)
      return created
    }

    function exchange(pat: string, extra: Record<string, string> = {}): Promise<Response> {
      return app.request('/v1/oauth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: EXCHANGE,
          subject_token: pat,
          subject_token_type: PAT_TYPE,
          ...extra,
        }).toString(),
      })
    }

    async function exchanged(pat: string, extra: Record<string, string> = {}): Promise<Exchanged> {
      const res = await exchange(pat, extra)
      expect(res.status, await res.clone().text()).toBe(200)
      const body = (await res.json()) as Exchanged
      secrets.push(body.access_token)
      return body
    }

    async function expectOAuthError(res: Response, code: string, error: string) {
      const text = await res.text()
      expect(res.status, text).toBe(400)
      expect(res.headers.get('content-type')).toBe('application/json')
      expect(JSON.parse(text)).toMatchObject({ code, error })
    }

    const write = async (catalog: CatalogProcess, token: string) =>
      catalog.call('/projects', { token, json: { name: 'pipeline output' } })

    const authz = (token: string, audience = 'seqdb') =>
      app.request(`/v1/authz?audience=${audience}`, { token })

    it('a PAT is made once with its secret; the list shows it without secret or hash', async () => {
      const { tokens } = await account()
      const created = await createPat(tokens.access_token, {
        name: 'nightly upload',
        audience: 'seqdb',
        scopes: ['read'],
        expires_in: 30 * 86_400,
      })
      expect(created.token).toMatch(PAT_PATTERN)
      expect(created.token.startsWith(created.prefix)).toBe(true)
      expect(created).toMatchObject({
        kind: 'pat',
        name: 'nightly upload',
        audience: 'seqdb',
        scopes: ['read'],
      })
      const res = await app.request('/v1/user/tokens', { token: tokens.access_token })
      expect(res.status).toBe(200)
      const text = await res.text()
      expect(text).not.toContain(created.token)
      expect(text).not.toContain(created.token.slice(created.prefix.length))
      const { tokens: list } = JSON.parse(text) as { tokens: Array<Record<string, unknown>> }
      expect(list).toHaveLength(1)
      expect(Object.keys(list[0]!).sort()).toEqual(
        [
          'audience',
          'created_at',
          'expires_at',
          'id',
          'kind',
          'last_used_at',
          'name',
          'prefix',
          'scopes',
        ].sort(),
      )
      expect(list[0]).toMatchObject({ id: created.id, last_used_at: null, prefix: created.prefix })
      // The stored hash is not the secret, and no row holds the secret.
      const row = await app.server.tessera.db
        .selectFrom('personal_tokens')
        .selectAll()
        .where('id', '=', created.id)
        .executeTakeFirstOrThrow()
      expect(row.token_hash).toMatch(/^[0-9a-f]{64}$/)
      expect(JSON.stringify(row)).not.toContain(created.token)

      await exchanged(created.token)
      const after = (await (
        await app.request('/v1/user/tokens', { token: tokens.access_token })
      ).json()) as { tokens: Array<{ last_used_at: string | null }> }
      expect(after.tokens[0]!.last_used_at).not.toBeNull()
    })

    it('exchanged, it works at its own catalog within its scopes, fails at another', async () => {
      const { tokens, user } = await account()
      const reader = await createPat(tokens.access_token, {
        name: 'reader',
        audience: 'seqdb',
        scopes: ['read'],
      })
      const writer = await createPat(tokens.access_token, {
        name: 'writer',
        audience: 'seqdb',
        scopes: ['read', 'write'],
      })

      const read = await exchanged(reader.token)
      expect(read).toMatchObject({
        issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        token_type: 'Bearer',
        expires_in: 900,
        scope: 'read',
      })
      expect(read.refresh_token).toBeUndefined()
      expect(claimsOf(read.access_token)).toMatchObject({
        sub: user.id,
        aud: 'seqdb',
        scope: 'read',
        sid: reader.id,
      })
      // A read token lists, and cannot create.
      expect((await seqdb.call('/projects', { token: read.access_token })).status).toBe(200)
      const refused = await write(seqdb, read.access_token)
      expect(refused.status).toBe(403)
      expect(((await refused.json()) as { code: string }).code).toBe('insufficient_scope')
      expect(refused.headers.get('www-authenticate')).toContain('error="insufficient_scope"')
      expect(refused.headers.get('www-authenticate')).toContain('scope="write"')

      const full = await exchanged(writer.token)
      expect(full.scope).toBe('read write')
      expect((await write(seqdb, full.access_token)).status).toBe(201)
      // Another service refuses it: its audience is seqdb.
      const elsewhere = await write(syndb, full.access_token)
      expect(elsewhere.status).toBe(401)
      expect(elsewhere.headers.get('www-authenticate')).toContain('invalid_token')
      // So does Tessera itself (its own audience is TESSERA_AUDIENCE), and forward auth for
      // another audience.
      expect((await app.request('/v1/user/me', { token: full.access_token })).status).toBe(401)
      expect((await authz(full.access_token)).status).toBe(200)
      expect((await authz(full.access_token, 'syndb')).status).toBe(401)
      await expectProblem(await authz(full.access_token, 'nope'), 400, 'invalid_target')

      // Introspection reports its audience and scope.
      const introspected = await app.request('/v1/token/introspect', {
        json: { token: read.access_token },
        headers: { 'x-service-secret': SERVICE_SECRET },
      })
      expect(await introspected.json()).toMatchObject({
        active: true,
        aud: 'seqdb',
        scope: 'read',
        sid: reader.id,
      })
    })

    it('a narrower scope may be asked for; a wider scope or another audience may not', async () => {
      const { tokens } = await account()
      const pat = await createPat(tokens.access_token, { name: 'narrow', audience: 'seqdb' })
      expect(pat.scopes).toEqual(['read', 'write'])
      expect((await exchanged(pat.token, { scope: 'read' })).scope).toBe('read')
      expect((await exchanged(pat.token, { resource: 'seqdb' })).scope).toBe('read write')
      await expectOAuthError(
        await exchange(pat.token, { resource: 'syndb' }),
        'invalid_target',
        'invalid_target',
      )
      await expectOAuthError(
        await exchange(pat.token, { audience: 'elsewhere' }),
        'invalid_target',
        'invalid_target',
      )
      await expectOAuthError(
        await exchange(pat.token, { scope: 'read admin' }),
        'invalid_scope',
        'invalid_scope',
      )
      const reader = await createPat(tokens.access_token, {
        name: 'reader',
        audience: 'seqdb',
        scopes: ['read'],
      })
      await expectOAuthError(
        await exchange(reader.token, { scope: 'write' }),
        'invalid_scope',
        'invalid_scope',
      )
    })

    it('a wrong, mistyped or unknown secret is invalid_subject_token', async () => {
      const { tokens } = await account()
      const pat = await createPat(tokens.access_token, { name: 'typo', audience: 'seqdb' })
      const last = pat.token.at(-1) === 'A' ? 'B' : 'A'
      const mistyped = pat.token.slice(0, -1) + last
      for (const subject of [mistyped, `${pat.token}x`, 'tsr_pat_', tokens.refresh_token]) {
        await expectOAuthError(await exchange(subject), 'invalid_subject_token', 'invalid_request')
      }
      const wrongType = await exchange(pat.token, {
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      })
      await expectOAuthError(wrongType, 'validation_failed', 'invalid_request')
    })

    it('revoking a PAT ends its access tokens at the catalog and at Tessera', async () => {
      const { tokens } = await account()
      const pat = await createPat(tokens.access_token, { name: 'to revoke', audience: 'seqdb' })
      const held = await exchanged(pat.token)
      expect((await write(seqdb, held.access_token)).status).toBe(201)
      const res = await app.request(`/v1/user/tokens/${pat.id}`, {
        method: 'DELETE',
        token: tokens.access_token,
      })
      expect(res.status).toBe(204)
      await expect
        .poll(async () => (await write(seqdb, held.access_token)).status, {
          timeout: 5_000,
          interval: 50,
        })
        .toBe(401)
      await expect.poll(async () => (await authz(held.access_token)).status).toBe(401)
      await expectOAuthError(await exchange(pat.token), 'personal_token_revoked', 'invalid_request')
      // Gone from the list; a second revocation is not found.
      const list = (await (
        await app.request('/v1/user/tokens', { token: tokens.access_token })
      ).json()) as { tokens: unknown[] }
      expect(list.tokens).toEqual([])
      await expectProblem(
        await app.request(`/v1/user/tokens/${pat.id}`, {
          method: 'DELETE',
          token: tokens.access_token,
        }),
        404,
        'not_found',
      )
      // The audit trail has the making, the use and the revocation.
      const events = await app.server.tessera.db
        .selectFrom('audit_events')
        .select('event')
        .where('session_id', '=', pat.id)
        .orderBy('at')
        .execute()
      expect(events.map((e) => e.event)).toEqual([
        'personal_token_created',
        'personal_token_used',
        'personal_token_revoked',
      ])
    })

    it('revoke all ends every PAT and job token of the user, and no one else’s', async () => {
      const { tokens } = await account()
      const other = await account()
      const mine = await createPat(tokens.access_token, { name: 'a', audience: 'seqdb' })
      await createPat(tokens.access_token, { name: 'b', audience: 'syndb' })
      const theirs = await createPat(other.tokens.access_token, { name: 'c', audience: 'seqdb' })
      const res = await app.request('/v1/user/tokens', {
        method: 'DELETE',
        token: tokens.access_token,
      })
      expect(await res.json()).toEqual({ revoked: 2 })
      await expectOAuthError(
        await exchange(mine.token),
        'personal_token_revoked',
        'invalid_request',
      )
      await exchanged(theirs.token)
      // Someone else's token is not found.
      await expectProblem(
        await app.request(`/v1/user/tokens/${theirs.id}`, {
          method: 'DELETE',
          token: tokens.access_token,
        }),
        404,
        'not_found',
      )
    })

    it('a disabled user’s PAT fails', async () => {
      const { tokens, user } = await account()
      const pat = await createPat(tokens.access_token, { name: 'disabled', audience: 'seqdb' })
      await setDisabled(app.server.tessera, user.id, true)
      const res = await exchange(pat.token)
      expect(res.status).toBe(400)
      // Disabling ended the PAT's session too.
      expect(((await res.json()) as { code: string }).code).toBe('personal_token_revoked')
    })

    it('a token made from a PAT cannot make or list tokens', async () => {
      const { tokens } = await account()
      const pat = await createPat(tokens.access_token, { name: 'own', audience: 'tessera' })
      const derived = await exchanged(pat.token)
      expect((await app.request('/v1/user/me', { token: derived.access_token })).status).toBe(200)
      await expectProblem(
        await app.request('/v1/user/tokens', {
          method: 'POST',
          token: derived.access_token,
          json: { name: 'more' },
        }),
        403,
        'forbidden',
      )
      await expectProblem(
        await app.request('/v1/user/tokens', { token: derived.access_token }),
        403,
        'forbidden',
      )
    })

    it('making a token asks for a bounded lifetime, a known audience and scope', async () => {
      const { tokens } = await account()
      const post = (json: unknown) =>
        app.request('/v1/user/tokens', { method: 'POST', token: tokens.access_token, json })
      await expectProblem(
        await post({ name: 'forever', expires_in: 2 * 31_536_000 }),
        400,
        'validation_failed',
      )
      await expectProblem(await post({ name: 'x', audience: 'nope' }), 400, 'invalid_target')
      await expectProblem(await post({ name: 'x', scopes: ['admin'] }), 400, 'invalid_scope')
      await expectProblem(await post({ scopes: ['read'] }), 400, 'validation_failed')
      await expectProblem(
        await post({ name: 'x', kind: 'job', expires_in: 86_401 }),
        400,
        'validation_failed',
      )
    })

    it('login, refresh and code exchange pick the audience; unknown is refused', async () => {
      const { email, user } = await register(app, uniqueEmail('aud'))
      const first = await tokenPairOf(
        await app.request('/v1/user/auth/login', {
          json: { email, password: PASSWORD, resource: 'seqdb', scope: 'read' },
        }),
      )
      secrets.push(first.access_token, first.refresh_token)
      expect(claimsOf(first.access_token)).toMatchObject({ aud: 'seqdb', scope: 'read' })
      // One session, several audiences: the audience is per access token.
      const second = await tokenPairOf(
        await app.request('/v1/user/auth/refresh', {
          json: { refresh_token: first.refresh_token, audience: 'syndb' },
        }),
      )
      expect(claimsOf(second.access_token)).toMatchObject({
        aud: 'syndb',
        scope: 'read write',
        sid: claimsOf(first.access_token).sid,
      })
      expect((await write(syndb, second.access_token)).status).toBe(201)
      expect((await write(seqdb, second.access_token)).status).toBe(401)
      const third = await tokenPairOf(await refresh(app, second.refresh_token))
      expect(claimsOf(third.access_token)).toMatchObject({ aud: 'tessera', scope: 'read write' })

      await expectProblem(
        await app.request('/v1/user/auth/login', {
          json: { email, password: PASSWORD, resource: 'https://elsewhere.example' },
        }),
        400,
        'invalid_target',
      )
      await expectProblem(
        await app.request('/v1/user/auth/login', {
          json: { email, password: PASSWORD, scope: 'admin' },
        }),
        400,
        'invalid_scope',
      )
      await expectProblem(
        await app.request('/v1/user/auth/refresh', {
          json: { refresh_token: third.refresh_token, resource: 'nope' },
        }),
        400,
        'invalid_target',
      )
      // Refused before the token is spent: the same token still refreshes.
      await tokenPairOf(await refresh(app, third.refresh_token))

      // The login code of a federated login, as its callback makes one, exchanged for seqdb.
      const verifier = randomBytes(32).toString('base64url')
      const challenge = createHash('sha256').update(verifier).digest('base64url')
      const code = await createLoginCode(app.server.tessera, user.id, 'github', challenge)
      const federated = await tokenPairOf(
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code, code_verifier: verifier, resource: 'seqdb', scope: 'write' },
        }),
      )
      secrets.push(federated.access_token, federated.refresh_token)
      expect(claimsOf(federated.access_token)).toMatchObject({ aud: 'seqdb', scope: 'write' })

      // A device login asks for its audience at the token endpoint.
      const device = await startDevice(app)
      await approveAs(app.server.tessera, first.access_token, device.user_code)
      const unknownTarget = await postForm(app, '/v1/oauth/token', {
        grant_type: DEVICE_GRANT,
        device_code: device.device_code,
        client_id: CLI_CLIENT,
        resource: 'nowhere',
      })
      await expectOAuthError(unknownTarget, 'invalid_target', 'invalid_target')
      const viaDevice = await tokenPairOf(
        await postForm(app, '/v1/oauth/token', {
          grant_type: DEVICE_GRANT,
          device_code: device.device_code,
          client_id: CLI_CLIENT,
          resource: 'syndb',
          scope: 'read',
        }),
      )
      secrets.push(viaDevice.access_token, viaDevice.refresh_token)
      expect(claimsOf(viaDevice.access_token)).toMatchObject({ aud: 'syndb', scope: 'read' })
      await expectProblem(
        await app.request('/v1/user/auth/oauth/exchange', {
          json: { code: 'tessera_lc_unknown', resource: 'nope' },
        }),
        400,
        'invalid_target',
      )
    })

    it('a job token lives its TTL, is listed and revocable, and is not refreshable', async () => {
      const { tokens } = await account()
      const res = await app.request('/v1/user/tokens', {
        method: 'POST',
        token: tokens.access_token,
        json: { name: 'hpc job 42', kind: 'job', audience: 'seqdb', expires_in: 12 * 3600 },
      })
      expect(res.status).toBe(201)
      const job = (await res.json()) as Record<string, unknown> & { access_token: string }
      secrets.push(job.access_token)
      expect(job).toMatchObject({ kind: 'job', prefix: null, token_type: 'Bearer' })
      expect(job.expires_in).toBe(12 * 3600)
      expect(job).not.toHaveProperty('refresh_token')
      expect(job).not.toHaveProperty('token')
      const claims = claimsOf(job.access_token)
      expect(Date.parse(claims.exp as string) - Date.parse(claims.iat as string)).toBe(
        12 * 3600 * 1000,
      )
      expect(claims).toMatchObject({ aud: 'seqdb', sid: job.id })
      expect((await write(seqdb, job.access_token)).status).toBe(201)
      const list = (await (
        await app.request('/v1/user/tokens', { token: tokens.access_token })
      ).json()) as { tokens: Array<{ id: string; kind: string }> }
      expect(list.tokens).toContainEqual(expect.objectContaining({ id: job.id, kind: 'job' }))

      // Not refreshable: it is no refresh token, nor a PAT to exchange.
      const refreshed = await refresh(app, job.access_token)
      expect(refreshed.status).toBe(400)
      expect(((await refreshed.json()) as { code: string }).code).toBe('validation_failed')
      await expectOAuthError(
        await exchange(job.access_token),
        'validation_failed',
        'invalid_request',
      )
      // Valid up to its expiry (plus the verifiers' 30 s of skew), not after.
      const exp = Date.parse(claims.exp as string)
      const now = app.clock()
      try {
        app.clock.set(exp + 30_000)
        expect((await authz(job.access_token)).status).toBe(200)
        app.clock.set(exp + 31_000)
        const expired = await authz(job.access_token)
        expect(expired.status).toBe(401)
        expect(expired.headers.get('www-authenticate')).toContain('expired')
      } finally {
        app.clock.set(now)
      }

      const revoke = await app.request(`/v1/user/tokens/${job.id}`, {
        method: 'DELETE',
        token: tokens.access_token,
      })
      expect(revoke.status).toBe(204)
      await expect
        .poll(async () => (await write(seqdb, job.access_token)).status, {
          timeout: 5_000,
          interval: 50,
        })
        .toBe(401)
    })

    it('keys stay published and revocations kept as long as a job token lives', () => {
      const { config } = app.server.tessera
      expect(config.jobTokenMaxTtl).toBe(86_400)
      expect(revocationRetentionMs(config)).toBe(86_400_000 + 60_000)
      expect(retireWindowMs({ config })).toBe(86_400_000 + 10_000 + 60_000)
    })

    it('making a token needs a recent authentication', async () => {
      const { tokens } = await account()
      const now = app.clock()
      try {
        app.clock.advance((app.server.tessera.config.reauthMaxAge + 1) * 1000)
        await expectProblem(
          await app.request('/v1/user/tokens', {
            method: 'POST',
            token: (await tokenPairOf(await refresh(app, tokens.refresh_token))).access_token,
            json: { name: 'late' },
          }),
          401,
          'reauthentication_required',
        )
      } finally {
        app.clock.set(now)
      }
    })

    it('an expired PAT is personal_token_expired; its tokens never outlive it', async () => {
      const { tokens } = await account()
      const pat = await createPat(tokens.access_token, { name: 'short', expires_in: 600 })
      const now = app.clock()
      try {
        app.clock.advance(590_000)
        // Ten seconds left: the access token lives ten seconds, not ACCESS_TOKEN_TTL.
        expect((await exchanged(pat.token)).expires_in).toBe(10)
        app.clock.advance(10_000)
        await expectOAuthError(
          await exchange(pat.token),
          'personal_token_expired',
          'invalid_request',
        )
      } finally {
        app.clock.set(now)
      }
    })

    // Last: it reads what every test above logged.
    it('no secret or token appears in the logs', () => {
      expect(logLines.length).toBeGreaterThan(20)
      expect(secrets.length).toBeGreaterThan(20)
      const log = logLines.join('\n')
      for (const secret of secrets) expect(log).not.toContain(secret)
      expect(log).not.toMatch(/tsr_pat_[0-9A-Za-z]{8}/)
    })
  })
}
