import type { Config } from '../config/index.js'

/**
 * Seconds: the longest an access token Tessera signs can live, ACCESS_TOKEN_TTL or a job token's
 * JOB_TOKEN_MAX_TTL (README, "Scripts, pipelines and services"). Whatever must outlast every
 * token (a retiring key's publication, the revocation log's retention, the feed's `ttl`) is
 * measured by this.
 */
export function longestTokenLifetime(
  config: Pick<Config, 'accessTokenTtl'> & Partial<Pick<Config, 'jobTokenMaxTtl'>>,
): number {
  return Math.max(config.accessTokenTtl, config.jobTokenMaxTtl ?? 0)
}
