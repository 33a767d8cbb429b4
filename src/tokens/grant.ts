import type { Config } from '../config/index.js'
import { TesseraError } from '../errors.js'

/**
 * What one access token is for: its `aud` and its `scope` (README, "Scripts, pipelines and
 * services"). The audience is per access token, not per session: one session can mint tokens for
 * several audiences, each token for one.
 */
export interface AccessGrant {
  audience: string
  scopes: readonly string[]
}

export type GrantConfig = Pick<Config, 'audience' | 'audiences' | 'scopes'>

/** What a client asks for: RFC 8707 `resource` or RFC 8693 `audience`, and RFC 6749 `scope`. */
export interface GrantRequest {
  resource?: string | undefined
  audience?: string | undefined
  scope?: string | undefined
}

/** The grant of an ordinary login: Tessera's own audience, every scope. */
export function defaultGrant(config: GrantConfig): AccessGrant {
  return { audience: config.audience, scopes: config.scopes }
}

/**
 * The grant a request asks for, within `allowed` (by default what an ordinary login may have:
 * any configured audience, every scope). An audience is named exactly as configured, in either
 * parameter (a deployment that wants URIs names its audiences by URI); none asked for is
 * `allowed.audience`. An unknown or disallowed audience is `invalid_target`; a scope outside
 * `allowed.scopes` is `invalid_scope`. No scope asked for is all of `allowed.scopes`.
 */
export function requestedGrant(
  config: GrantConfig,
  request: GrantRequest,
  allowed: { audience?: string; scopes?: readonly string[] } = {},
): AccessGrant {
  if (
    request.resource !== undefined &&
    request.audience !== undefined &&
    request.resource !== request.audience
  ) {
    throw new TesseraError('invalid_target', 'resource and audience name different audiences')
  }
  const asked = request.resource ?? request.audience
  const audience = asked ?? allowed.audience ?? config.audience
  if (
    !config.audiences.includes(audience) ||
    (allowed.audience !== undefined && audience !== allowed.audience)
  ) {
    throw new TesseraError(
      'invalid_target',
      allowed.audience === undefined
        ? `Unknown audience; this server mints tokens for: ${config.audiences.join(', ')}`
        : `This credential is for the audience ${allowed.audience} only`,
    )
  }
  const allowedScopes = allowed.scopes ?? config.scopes
  return { audience, scopes: requestedScopes(request.scope, allowedScopes) }
}

/**
 * A space-separated `scope` parameter (RFC 6749 §3.3) within `allowed`, in the configured order;
 * undefined asks for all of `allowed`.
 */
export function requestedScopes(
  scope: string | undefined,
  allowed: readonly string[],
): readonly string[] {
  if (scope === undefined) return allowed
  const asked = new Set(scope.split(' ').filter((part) => part.length > 0))
  if (asked.size === 0) {
    throw new TesseraError('invalid_scope', 'scope must name at least one scope')
  }
  for (const name of asked) {
    if (!allowed.includes(name)) {
      throw new TesseraError(
        'invalid_scope',
        `The scope ${JSON.stringify(name).slice(0, 80)} is not allowed here; allowed: ` +
          allowed.join(' '),
      )
    }
  }
  return allowed.filter((name) => asked.has(name))
}
