/**
 * The example catalog, a real process with `tessera/verify` following the revocation stream (and
 * one polling), against a real `tessera serve`: every way a session ends makes a held access token
 * fail at the catalog within about a second, without the catalog calling Tessera per request
 * (docs/revocation.md). The disable and the key revocation come from the `tessera` command.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CatalogProcess, startCatalog } from '../support/catalog.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { dialects } from '../support/dialects.js'
import { runCli, startTesseraProcess, type TesseraProcess } from '../support/process.js'
import { PASSWORD, type TokenPairBody, tokenPairOf, uniqueEmail } from '../support/users.js'

/** The bound a revocation must arrive within at a streaming verifier. */
const STREAM_BOUND_MS = 2_000
const POLL_MS = 500

for (const dialect of dialects()) {
  describe(`revocations reach the example catalog [${dialect}]`, () => {
    let db: TestDatabase
    let tessera: TesseraProcess
    let streaming: CatalogProcess
    let polling: CatalogProcess

    beforeAll(async () => {
      db = await createTestDatabase(dialect)
      tessera = await startTesseraProcess({
        databaseUrl: db.url,
        // Strict refresh (no reuse interval): a spent token presented again is reuse at once.
        env: {
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          REFRESH_REUSE_INTERVAL: '0',
        },
      })
      ;[streaming, polling] = await Promise.all([
        startCatalog(tessera.url),
        startCatalog(tessera.url, {
          TESSERA_REVOCATIONS: 'poll',
          REVOCATIONS_POLL_MS: String(POLL_MS),
        }),
      ])
    }, 60_000)
    afterAll(async () => {
      streaming?.stop()
      polling?.stop()
      await tessera?.stop()
      await db?.drop()
    })

    async function account(): Promise<{ email: string; tokens: TokenPairBody }> {
      const email = uniqueEmail('catalog-revocation')
      const registered = await tessera.request('/v1/user/auth/register', {
        json: { email, password: PASSWORD },
      })
      expect(registered.status).toBe(201)
      return { email, tokens: await loginAs(email) }
    }
    const loginAs = async (email: string, password = PASSWORD) =>
      tokenPairOf(await tessera.request('/v1/user/auth/login', { json: { email, password } }))

    /** What the catalog answers a write with this token. */
    const write = async (catalog: CatalogProcess, token: string) =>
      (await catalog.call('/projects', { token, json: { name: 'probe' } })).status

    /** The token works at the catalog, then, after `end`, fails there within `bound`. */
    async function endsAt(
      catalog: CatalogProcess,
      token: string,
      end: () => Promise<unknown>,
      bound = STREAM_BOUND_MS,
    ): Promise<void> {
      expect(await write(catalog, token)).toBe(201)
      await end()
      await expect.poll(() => write(catalog, token), { timeout: bound, interval: 20 }).toBe(401)
    }

    it('logout', async () => {
      const { tokens } = await account()
      await endsAt(streaming, tokens.access_token, () =>
        tessera.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } }),
      )
    })

    it('logout-all', async () => {
      const { email, tokens } = await account()
      const second = await loginAs(email)
      await endsAt(streaming, second.access_token, () =>
        tessera.request('/v1/user/auth/logout-all', { method: 'POST', token: tokens.access_token }),
      )
      expect(await write(streaming, tokens.access_token)).toBe(401)
    })

    it('refresh-token reuse (the thief presents the spent token)', async () => {
      const { tokens } = await account()
      const child = await tokenPairOf(
        await tessera.request('/v1/user/auth/refresh', {
          json: { refresh_token: tokens.refresh_token },
        }),
      )
      await endsAt(streaming, child.access_token, () =>
        tessera.request('/v1/user/auth/refresh', { json: { refresh_token: tokens.refresh_token } }),
      )
    })

    it('a password change ends the other sessions', async () => {
      const { email, tokens } = await account()
      const own = await loginAs(email)
      await endsAt(streaming, tokens.access_token, () =>
        tessera.request('/v1/user/password', {
          json: { current_password: PASSWORD, new_password: `${PASSWORD} anew` },
          token: own.access_token,
        }),
      )
      expect(await write(streaming, own.access_token)).toBe(201)
    })

    it('`tessera user disable`, run as another process', async () => {
      const { email, tokens } = await account()
      await endsAt(streaming, tokens.access_token, async () => {
        const run = await runCli(['user', 'disable', '--email', email], { databaseUrl: db.url })
        expect(run.code, run.stderr).toBe(0)
      })
    })

    it('a polling catalog: within the poll interval plus a second', async () => {
      const { tokens } = await account()
      await endsAt(
        polling,
        tokens.access_token,
        () =>
          tessera.request('/v1/user/auth/logout', {
            json: { refresh_token: tokens.refresh_token },
          }),
        POLL_MS + 1_000,
      )
    })

    it('the catalog reports the feed fresh at /health', async () => {
      for (const catalog of [streaming, polling]) {
        const health = (await (await catalog.call('/health')).json()) as {
          revocations: { stale: boolean; mode: string }
        }
        expect(health.revocations.stale).toBe(false)
      }
    })

    // Last: it replaces the active key, which the tests above sign with.
    it('`tessera keys revoke` of the signing key, run as another process', async () => {
      const { tokens } = await account()
      const footer = tokens.access_token.split('.')[3]!
      const { kid } = JSON.parse(Buffer.from(footer, 'base64url').toString()) as { kid: string }
      // The catalog keeps the key cached: only the feed's entry can end the token in time.
      await endsAt(streaming, tokens.access_token, async () => {
        const run = await runCli(['keys', 'revoke', kid], { databaseUrl: db.url })
        expect(run.code, run.stderr).toBe(0)
      })
    })
  })
}
