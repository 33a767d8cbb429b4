/**
 * A service client's access token at a resource service (README, "Service clients"):
 * `tessera/verify` accepts the `client` profile (no `email`) and nothing between it and an
 * account's, and a verifier following the revocation feed refuses the tokens of a client revoked
 * by the real `tessera client revoke`, while another client's tokens keep verifying.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, TokenError, type Verifier } from '../../src/verify/index.js'
import { verifyAccessToken } from '../../src/verify/token.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { runCli } from '../support/process.js'
import { ISSUER } from '../support/revocations.js'
import { issue, refusal, resolveKey, verifyOptions } from '../verify/helpers.js'

describe('the client token profile in tessera/verify', () => {
  it('acct "client" without email verifies, and has no email', async () => {
    const token = await issue({ acct: 'client', verified: false, email: undefined })
    const { claims } = await verifyAccessToken(token, resolveKey, verifyOptions)
    expect(claims.acct).toBe('client')
    expect(claims).not.toHaveProperty('email')
  })

  it('a client token with an email, an account token without one: invalid_claims', async () => {
    for (const overrides of [
      { acct: 'client', email: 'svc@example.org' },
      { acct: 'client', email: '' },
      { acct: 'regular', email: undefined },
      { acct: 'service', email: undefined },
      { acct: 'clients', email: undefined },
    ]) {
      expect(await refusal(await issue(overrides)), JSON.stringify(overrides)).toBe(
        'invalid_claims',
      )
    }
  })
})

for (const dialect of dialects()) {
  describe(`client tokens at a verifier following the revocation feed [${dialect}]`, () => {
    let app: TestApp
    let verifier: Verifier

    beforeAll(async () => {
      app = await makeTestApp({ dialect })
      verifier = createVerifier(
        { keysUrl: `${app.url}/v1/keys` },
        { issuer: ISSUER, audience: 'tessera', revocations: { stream: true } },
      )
    }, 60_000)
    afterAll(async () => {
      verifier?.close()
      await app?.close()
    })

    async function newClient(name: string) {
      const created = await runCli(['client', 'create', name], { databaseUrl: app.databaseUrl })
      expect(created.code, created.stderr).toBe(0)
      const id = /^client_id +(\S+)$/m.exec(created.stdout)![1]!
      const secret = /^client_secret +(\S+)$/m.exec(created.stdout)![1]!
      const res = await app.request('/v1/oauth/token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: id,
          client_secret: secret,
        }).toString(),
      })
      expect(res.status).toBe(200)
      return { id, token: ((await res.json()) as { access_token: string }).access_token }
    }

    const verdict = async (token: string) => {
      try {
        await verifier.verify(token)
        return 'ok'
      } catch (error) {
        if (error instanceof TokenError) return error.reason
        throw error
      }
    }

    it('`client revoke` ends that client’s tokens there; another client’s stay valid', async () => {
      const revoked = await newClient('feed-revoked')
      const kept = await newClient('feed-kept')
      const claims = await verifier.verify(revoked.token)
      expect(claims).toMatchObject({ sub: revoked.id, sid: revoked.id, acct: 'client' })
      expect(claims.email).toBeUndefined()

      const result = await runCli(['client', 'revoke', revoked.id], {
        databaseUrl: app.databaseUrl,
      })
      expect(result.code, result.stderr).toBe(0)
      await expect
        .poll(() => verdict(revoked.token), { timeout: 5_000, interval: 20 })
        .toBe('revoked')
      expect(await verdict(kept.token)).toBe('ok')
    })
  })
}
