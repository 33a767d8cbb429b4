import type { Context } from 'hono'
import { Hono } from 'hono'
import * as v from 'valibot'
import { serviceSecretMatches } from '../../accounts/service-secret.js'
import { requirePermission } from '../../clients/authenticate.js'
import { TesseraError } from '../../errors.js'
import { isSessionLive } from '../../sessions/sessions.js'
import { verifyOwnAccessToken } from '../../tokens/access-token.js'
import { introspect } from '../../tokens/introspect.js'
import { TokenError } from '../../verify/errors.js'
import type { AccessTokenClaims } from '../../verify/token.js'
import { noControlCharacters, validate } from '../body.js'
import { type PostedClientCredentials, requestClient } from '../client-auth.js'
import type { AppEnv } from '../env.js'
import { requestHeader } from '../incoming.js'
import { bearerToken, verifyUnrevokedBearer } from '../middleware/require-user.js'
import { setAnswerHeader } from '../outgoing.js'

const IntrospectBody = v.object({
  token: v.pipe(
    v.string('must be a string'),
    noControlCharacters,
    v.nonEmpty('is required'),
    v.maxLength(8192, 'is too long'),
  ),
  token_type_hint: v.optional(v.pipe(v.string(), noControlCharacters)),
  // client_secret_post (README, "Service clients"); bounded, checked by authenticateClient.
  client_id: v.optional(v.pipe(v.string(), v.maxLength(100, 'is too long'))),
  client_secret: v.optional(v.pipe(v.string(), v.maxLength(200, 'is too long'))),
})

/**
 * Who may introspect (RFC 7662 §2.1 requires caller authentication): a service client with the
 * `introspect` permission (HTTP Basic or form fields), the holder of the service secret, or a
 * live session of a service account.
 */
async function assertServiceCaller(
  c: Context<AppEnv>,
  posted: PostedClientCredentials,
): Promise<void> {
  const client = await requestClient(c, posted)
  if (client !== undefined) return requirePermission(client, 'introspect')
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
    'Authenticate as a service client, with a service account token or X-Service-Secret',
  )
}

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i
const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i

/**
 * RFC 7662 takes a form body; JSON is accepted too. The fields are parsed here and validated only
 * after the caller is checked (`validate` in the route), since they may carry the client's
 * credentials (client_secret_post): an unauthenticated caller learns nothing about its body.
 * Undefined for another content type (415 after the check); JSON that does not parse is
 * INVALID_JSON (400 after the check).
 */
async function introspectFields(c: Context<AppEnv>): Promise<unknown> {
  const type = c.req.header('content-type') ?? ''
  if (FORM_TYPE.test(type)) return Object.fromEntries(new URLSearchParams(await c.req.text()))
  if (!JSON_TYPE.test(type)) return undefined
  try {
    return JSON.parse(await c.req.text()) as unknown
  } catch {
    return INVALID_JSON
  }
}
const INVALID_JSON = Symbol('invalid JSON')

function postedCredentials(fields: unknown): PostedClientCredentials {
  if (typeof fields !== 'object' || fields === null) return {}
  const { client_id, client_secret } = fields as Record<string, unknown>
  return typeof client_secret === 'string'
    ? { client_id: typeof client_id === 'string' ? client_id : '', client_secret }
    : {}
}

export const tokenRoutes = new Hono<AppEnv>().post('/introspect', async (c) => {
  const fields = await introspectFields(c)
  await assertServiceCaller(c, postedCredentials(fields))
  if (fields === undefined) {
    throw new TesseraError(
      'unsupported_media_type',
      'Send the body as application/x-www-form-urlencoded or application/json',
    )
  }
  if (fields === INVALID_JSON) {
    throw new TesseraError('validation_failed', 'The request body is not valid JSON')
  }
  const body = validate(IntrospectBody, fields)
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
  // Space-separated RFC 8176 methods, so a service can require `mfa` (README, "Second factors");
  // empty for a token whose session has none (a personal or job token): nginx then sends none.
  'X-Auth-Amr': (claims) => claims.amr?.join(' ') ?? '',
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
  const token = bearerToken(requestHeader(c, 'authorization'))
  if (token === undefined)
    throw new TesseraError('unauthorized', 'A bearer access token is required')
  const claims = await verifyUnrevokedBearer(t, token, audience)
  for (const [name, value] of Object.entries(IDENTITY_HEADERS)) {
    setAnswerHeader(c, name, value(claims))
  }
  return c.json({ sub: claims.sub, acct: claims.acct, verified: claims.verified })
})
