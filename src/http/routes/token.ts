import type { Context } from 'hono'
import { Hono } from 'hono'
import * as v from 'valibot'
import { serviceSecretMatches } from '../../accounts/service-secret.js'
import { TesseraError } from '../../errors.js'
import { isSessionLive } from '../../sessions/sessions.js'
import { verifyOwnAccessToken } from '../../tokens/access-token.js'
import { introspect } from '../../tokens/introspect.js'
import { TokenError } from '../../verify/errors.js'
import type { AccessTokenClaims } from '../../verify/token.js'
import { noControlCharacters, readJson, validate } from '../body.js'
import type { AppEnv } from '../env.js'
import { bearerToken, verifyUnrevokedBearer } from '../middleware/require-user.js'

const IntrospectBody = v.object({
  token: v.pipe(
    v.string('must be a string'),
    noControlCharacters,
    v.nonEmpty('is required'),
    v.maxLength(8192, 'is too long'),
  ),
  token_type_hint: v.optional(v.pipe(v.string(), noControlCharacters)),
})

/**
 * Who may introspect (RFC 7662 §2.1 requires caller authentication): the holder of the service
 * secret, or a live session of a service account.
 */
async function assertServiceCaller(c: Context<AppEnv>): Promise<void> {
  const t = c.get('tessera')
  const secret = c.req.header('x-service-secret')
  if (secret !== undefined && t.config.serviceSecret !== undefined) {
    if (serviceSecretMatches(t.config.serviceSecret, secret)) return
    throw new TesseraError('unauthorized', 'The X-Service-Secret header is wrong')
  }
  const token = bearerToken(c.req.header('authorization'))
  if (token !== undefined) {
    try {
      const { claims } = await verifyOwnAccessToken(t, token)
      if (claims.acct === 'service' && (await isSessionLive(t, claims.sid, claims.sub))) return
    } catch (error) {
      if (!(error instanceof TokenError)) throw error
    }
    throw new TesseraError('unauthorized', 'Introspection needs a live service account token', {
      invalidToken: true,
    })
  }
  throw new TesseraError(
    'unauthorized',
    'Authenticate with a service account token or X-Service-Secret',
  )
}

/** RFC 7662 takes a form body; JSON is accepted too. */
async function readIntrospectBody(c: Context<AppEnv>) {
  const type = c.req.header('content-type') ?? ''
  if (/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) {
    const form = new URLSearchParams(await c.req.text())
    return validate(IntrospectBody, Object.fromEntries(form))
  }
  return readJson(c, IntrospectBody)
}

export const tokenRoutes = new Hono<AppEnv>().post('/introspect', async (c) => {
  await assertServiceCaller(c)
  const body = await readIntrospectBody(c)
  return c.json(await introspect(c.get('tessera'), body.token))
})

/**
 * Every identity header `GET /v1/authz` answers, each on every 200 and none on a refusal. The
 * proxy in front of a service must set all of them from this answer, which replaces what a client
 * sent under the same names (README, "Introspection and forward auth"); examples/nginx and
 * examples/traefik do, and test/resource/forward-auth-nginx.test.ts checks that they list exactly
 * these.
 */
export const IDENTITY_HEADERS = {
  'X-Auth-Subject': (claims) => claims.sub,
  'X-Auth-Account-Type': (claims) => claims.acct,
  'X-Auth-Verified': (claims) => String(claims.verified),
  'X-Auth-Session': (claims) => claims.sid,
} as const satisfies Record<string, (claims: AccessTokenClaims) => string>

/**
 * Forward auth for nginx `auth_request`, Traefik ForwardAuth and Envoy ext_authz (HTTP mode):
 * one local verification and a look into this process's copy of the revocation log, no database
 * (docs/revocation.md). The identity travels back in response headers.
 */
export const authzRoutes = new Hono<AppEnv>().get('/', async (c) => {
  const t = c.get('tessera')
  // The proxy of each service names its audience (README, "Scripts, pipelines and services").
  const audience = c.req.query('audience') ?? t.config.audience
  if (!t.config.audiences.includes(audience))
    throw new TesseraError('invalid_target', 'Unknown audience')
  const token = bearerToken(c.req.header('authorization'))
  if (token === undefined)
    throw new TesseraError('unauthorized', 'A bearer access token is required')
  const claims = await verifyUnrevokedBearer(t, token, audience)
  for (const [name, value] of Object.entries(IDENTITY_HEADERS)) c.header(name, value(claims))
  return c.json({ sub: claims.sub, acct: claims.acct, verified: claims.verified })
})
