import type { User } from '../db/schema.js'
import type { IssuedRefreshToken } from '../sessions/sessions.js'
import { type AccessTokenDeps, issueAccessToken } from './access-token.js'

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
  user: Pick<User, 'id' | 'email' | 'account_type' | 'verified' | 'role'>,
  issued: IssuedRefreshToken,
): Promise<TokenPair> {
  return {
    access_token: await issueAccessToken(deps, user, issued.sessionId),
    refresh_token: issued.refreshToken,
    token_type: 'Bearer',
    expires_in: deps.config.accessTokenTtl,
    refresh_expires_in: Math.max(0, Math.floor((issued.refreshExpiresAt - deps.clock()) / 1000)),
  }
}
