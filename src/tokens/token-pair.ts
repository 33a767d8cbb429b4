import type { Signer } from '../keys/key-ring.js'
import type { IssuedRefreshToken } from '../sessions/sessions.js'
import { type AccessTokenDeps, signAccessToken, type TokenSubject } from './access-token.js'
import type { AccessGrant } from './grant.js'

/** openapi.yaml, `TokenPair`. */
export interface TokenPair {
  access_token: string
  refresh_token: string
  token_type: 'Bearer'
  expires_in: number
  refresh_expires_in: number
}

export async function issueTokenPair(
  deps: AccessTokenDeps,
  user: TokenSubject,
  issued: IssuedRefreshToken,
  grant?: AccessGrant,
): Promise<TokenPair> {
  return tokenPairSignedBy(deps, await deps.keys.signer(), user, issued, grant)
}

/**
 * `issueTokenPair` with a signer fetched beforehand (see `signAccessToken`); synchronous, for the
 * answer of a refresh signed inside its synchronous SQLite transaction
 * (src/sessions/sqlite-rotation.ts).
 */
export function tokenPairSignedBy(
  deps: Pick<AccessTokenDeps, 'clock' | 'config'>,
  signer: Signer,
  user: TokenSubject,
  issued: IssuedRefreshToken,
  grant?: AccessGrant,
): TokenPair {
  return {
    access_token: signAccessToken(deps, signer, user, issued.sessionId, {
      grant,
      amr: issued.amr,
    }),
    refresh_token: issued.refreshToken,
    token_type: 'Bearer',
    expires_in: deps.config.accessTokenTtl,
    refresh_expires_in: Math.max(0, Math.floor((issued.refreshExpiresAt - deps.clock()) / 1000)),
  }
}
