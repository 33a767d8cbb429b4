import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { KeyRing } from '../keys/key-ring.js'
import { formatPasetoTime } from '../paseto/time.js'
import type { AccessGrant } from '../tokens/grant.js'
import { signV4Public } from '../tokens/sign.js'
import type { ServiceClient } from './clients.js'

/** RFC 6749 §4.4. */
export const CLIENT_CREDENTIALS_GRANT_TYPE = 'client_credentials'

export interface ClientTokenDeps {
  keys: KeyRing
  clock: Clock
  config: Pick<Config, 'issuer' | 'accessTokenTtl'>
}

/** RFC 6749 §4.4.3: an access token and no refresh token. */
export interface ClientTokenResponse {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
}

/**
 * The `client_credentials` grant for an authenticated client (src/clients/authenticate.ts): a
 * v4.public access token for the audience and scopes asked for (any configured audience, every
 * scope by default: src/tokens/grant.ts) whose `sub` and `sid` are the client id and whose
 * `acct` is `client`, without `email`, so no verifier takes it for an account; valid
 * ACCESS_TOKEN_TTL. The `sid` is what revoking the client announces on the revocation log
 * (`revokeClient`).
 */
export async function issueClientToken(
  deps: ClientTokenDeps,
  client: ServiceClient,
  grant: AccessGrant,
): Promise<ClientTokenResponse> {
  const signer = await deps.keys.signer()
  const now = Math.floor(deps.clock() / 1000) * 1000
  const claims = {
    iss: deps.config.issuer,
    sub: client.id,
    aud: grant.audience,
    iat: formatPasetoTime(now),
    nbf: formatPasetoTime(now),
    exp: formatPasetoTime(now + deps.config.accessTokenTtl * 1000),
    jti: randomUUID(),
    sid: client.id,
    acct: 'client',
    verified: false,
    scope: grant.scopes.join(' '),
    // RFC 9068 §2.2's claim for the client a token was issued to.
    client_id: client.id,
  }
  const footer = Buffer.from(JSON.stringify({ kid: signer.kid }))
  return {
    access_token: await signV4Public(signer.key, claims, footer),
    token_type: 'Bearer',
    expires_in: deps.config.accessTokenTtl,
  }
}
