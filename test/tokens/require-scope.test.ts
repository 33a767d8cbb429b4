/**
 * `requireScope()` of `tessera/verify` (README, "Scripts, pipelines and services"): a route
 * needing scopes answers 403 `insufficient_scope` with the RFC 6750 challenge naming them unless
 * the token's `scope` claim holds every one; tokens without the claim hold none. Tokens are made
 * by hand with the verifier tests' key, so every shape of the claim is covered.
 */
import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { describe, expect, it } from 'vitest'
import {
  type AuthEnv,
  auth,
  createVerifier,
  requireScope,
  TokenError,
  verifyAccessToken,
} from '../../src/verify/index.js'
import {
  AUDIENCE,
  accessClaims,
  ISSUER,
  issue,
  NOW,
  resolveKey,
  signer,
  verifyOptions,
} from '../verify/helpers.js'

function service() {
  const verifier = createVerifier(
    { keys: [{ kid: signer.kid, paserk: signer.paserk }] },
    { issuer: ISSUER, audience: AUDIENCE, now: () => NOW },
  )
  const app = new Hono<AuthEnv>()
  app.use(auth({ verifier, publicRoutes: [{ method: 'GET', path: '/projects' }] }))
  app.get('/projects', (c) => c.json({ projects: [] }))
  app.post('/projects', requireScope('write'), (c) => c.json({ created: true }, 201))
  app.post('/admin', requireScope('write', 'admin'), (c) => c.json({ ok: true }))
  app.onError((error) => {
    if (error instanceof HTTPException) return error.getResponse()
    throw error
  })
  return app
}

const call = (app: Hono<AuthEnv>, method: string, path: string, token?: string) =>
  app.request(path, {
    method,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })

describe('requireScope', () => {
  const app = service()

  it('lets a token through when its scope holds every scope the route needs', async () => {
    expect((await call(app, 'POST', '/projects', await issue({ scope: 'write' }))).status).toBe(201)
    expect(
      (await call(app, 'POST', '/projects', await issue({ scope: 'read write' }))).status,
    ).toBe(201)
    expect(
      (await call(app, 'POST', '/admin', await issue({ scope: 'admin read write' }))).status,
    ).toBe(200)
  })

  it('answers 403 insufficient_scope naming the scopes otherwise', async () => {
    for (const scope of ['read', '', 'writer', 'WRITE', 'read  wri te', undefined]) {
      const res = await call(app, 'POST', '/projects', await issue({ scope }))
      expect(res.status, String(scope)).toBe(403)
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      expect(((await res.json()) as { code: string }).code).toBe('insufficient_scope')
      const challenge = res.headers.get('www-authenticate') ?? ''
      expect(challenge).toContain('error="insufficient_scope"')
      expect(challenge).toContain('scope="write"')
    }
    const partial = await call(app, 'POST', '/admin', await issue({ scope: 'write' }))
    expect(partial.status).toBe(403)
    expect(partial.headers.get('www-authenticate')).toContain('scope="write admin"')
  })

  it('answers 401 without a token, and a read token still reads a public route', async () => {
    const anonymous = await call(app, 'POST', '/projects')
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="tessera"')
    expect((await call(app, 'GET', '/projects', await issue({ scope: 'read' }))).status).toBe(200)
  })

  it('is refused without scopes, or with a name a challenge cannot carry', () => {
    expect(() => (requireScope as (...s: string[]) => unknown)()).toThrow(TypeError)
    for (const bad of ['', 'two words', 'quo"te', 'back\\slash']) {
      expect(() => requireScope(bad)).toThrow(TypeError)
    }
  })

  it('a scope claim that is not a string makes the token invalid', async () => {
    for (const scope of [['read'], 1, true, null, { read: true }]) {
      const token = await issue({ scope })
      await expect(verifyAccessToken(token, resolveKey, verifyOptions)).rejects.toMatchObject({
        reason: 'invalid_claims',
      })
      await expect(verifyAccessToken(token, resolveKey, verifyOptions)).rejects.toBeInstanceOf(
        TokenError,
      )
    }
  })

  it('verifyAccessToken accepts any audience of a list, and no other', async () => {
    const options = { ...verifyOptions, audience: ['seqdb', 'syndb'] }
    const seqdb = await issue(accessClaims({ aud: 'seqdb' }))
    expect((await verifyAccessToken(seqdb, resolveKey, options)).claims.aud).toBe('seqdb')
    await expect(
      verifyAccessToken(await issue({ aud: AUDIENCE }), resolveKey, options),
    ).rejects.toMatchObject({ reason: 'wrong_audience' })
  })
})
