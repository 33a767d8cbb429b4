import type { Context } from 'hono'
import {
  authenticateClient,
  type ClientCredentials,
  invalidClientCredentials,
} from '../clients/authenticate.js'
import { type ClientTokenResponse, issueClientToken } from '../clients/client-credentials.js'
import type { ServiceClient } from '../clients/clients.js'
import { TesseraError } from '../errors.js'
import { type GrantRequest, requestedGrant } from '../tokens/grant.js'
import { clientContext } from './client.js'
import type { AppEnv } from './env.js'

/** Longer than any id and secret Tessera issues, with room for percent-encoding. */
const MAX_BASIC_LENGTH = 1024

/** Client credentials as form fields (RFC 6749 §2.3.1 `client_secret_post`). */
export interface PostedClientCredentials {
  client_id?: string | undefined
  client_secret?: string | undefined
}

/**
 * `Authorization: Basic` (RFC 6749 §2.3.1 `client_secret_basic`): base64 of the
 * form-urlencoded id, a colon and the form-urlencoded secret. Undefined without such a header; a
 * Basic header that does not decode is a 401 like a wrong secret.
 */
export function basicCredentials(header: string | undefined): ClientCredentials | undefined {
  const match = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header ?? '')
  if (match === null) return undefined
  const encoded = match[1]!
  const decoded =
    encoded.length > MAX_BASIC_LENGTH ? '' : Buffer.from(encoded, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 1) throw badBasic()
  try {
    const part = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '))
    return { clientId: part(decoded.slice(0, colon)), secret: part(decoded.slice(colon + 1)) }
  } catch {
    throw badBasic()
  }
}

function badBasic(): TesseraError {
  return new TesseraError(
    'invalid_client_credentials',
    'The Basic credentials are not a client id and secret',
  )
}

/**
 * The service client calling, when the request carries client credentials, by HTTP Basic or, on
 * form routes that pass them, by `client_id` and `client_secret` fields; undefined when it
 * carries none. Both at once is refused (RFC 6749 §2.3: one method per request).
 */
export async function requestClient(
  c: Context<AppEnv>,
  posted: PostedClientCredentials = {},
): Promise<ServiceClient | undefined> {
  const basic = basicCredentials(c.req.header('authorization'))
  const hasPosted = posted.client_secret !== undefined
  if (basic !== undefined && hasPosted) {
    throw new TesseraError(
      'validation_failed',
      'Authenticate the client once: HTTP Basic or client_secret, not both',
    )
  }
  const credentials =
    basic ??
    (hasPosted ? { clientId: posted.client_id ?? '', secret: posted.client_secret! } : undefined)
  if (credentials === undefined) return undefined
  return authenticateClient(c.get('tessera'), credentials, clientContext(c))
}

/**
 * `grant_type=client_credentials` at `POST /v1/oauth/token` (RFC 6749 §4.4): the client
 * authenticates (Basic or form fields) and gets an access token of its own, no refresh token.
 * `resource` (RFC 8707) or `audience` chooses the audience; both must agree when both are given.
 */
export async function clientCredentialsGrant(
  c: Context<AppEnv>,
  body: PostedClientCredentials & GrantRequest,
): Promise<ClientTokenResponse> {
  const client = await requestClient(c, body)
  if (client === undefined) throw invalidClientCredentials()
  const t = c.get('tessera')
  return issueClientToken(t, client, requestedGrant(t.config, body))
}
