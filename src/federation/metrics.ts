import { Counter, type Registry } from 'prom-client'
import type { OAuthProviderName } from '../config/index.js'
import type { FederatedLoginOutcome } from './outcomes.js'

const OUTCOMES: readonly FederatedLoginOutcome[] = [
  'ok',
  'linked',
  'access_denied',
  'provider_error',
  'account_exists',
  'account_disabled',
  'email_required',
  'link_required',
  'identity_taken',
  'provider_already_linked',
  'session_ended',
  'invalid_oauth_state',
  'invalid_login_code',
  'service_unavailable',
  'rate_limited',
]

/**
 * The `provider` label when the request does not name an enabled provider (an unknown login
 * code).
 */
const NO_PROVIDER = 'none'

/** The `provider` labels of login codes from the sign-in page (README, "Pages"). */
const PAGE_CODE_ORIGINS = ['password', 'session'] as const

export interface FederationMetrics {
  /**
   * Counts one outcome. `provider` may come from the URL: anything but an enabled provider's
   * name is counted as `none`, so the label set stays bounded whatever clients send.
   */
  count(provider: string | null, outcome: FederatedLoginOutcome): void
}

/**
 * `tessera_federated_logins_total{provider, outcome}` in the instance's registry. Kept apart from
 * `tessera_logins_total` (password logins) so neither metric's series change meaning; at most
 * 8 providers × 15 outcomes.
 */
export function createFederationMetrics(
  registry: Registry,
  enabled: readonly OAuthProviderName[],
): FederationMetrics {
  const logins = new Counter({
    name: 'tessera_federated_logins_total',
    help:
      'Federated logins and links by provider and outcome (ok, linked, the callback ?error= ' +
      'codes, invalid_oauth_state, invalid_login_code, service_unavailable, rate_limited); ' +
      'provider="password" or "session": login codes minted by the sign-in page',
    labelNames: ['provider', 'outcome'] as const,
    registers: [registry],
  })
  // Exported at 0 from the start for the enabled providers, so rate() and alerts see them.
  for (const provider of enabled)
    for (const outcome of OUTCOMES) logins.inc({ provider, outcome }, 0)
  if (enabled.length > 0) {
    for (const outcome of ['invalid_login_code', 'rate_limited'] as const) {
      logins.inc({ provider: NO_PROVIDER, outcome }, 0)
    }
  }
  // Login codes minted by Tessera's sign-in page (`LoginCodeOrigin`) count under these two fixed
  // labels when a client exchanges them; they appear once the pages have minted one.
  const known = new Set<string>([...enabled, ...PAGE_CODE_ORIGINS])
  return {
    count(provider, outcome) {
      logins.inc({
        provider: provider !== null && known.has(provider) ? provider : NO_PROVIDER,
        outcome,
      })
    },
  }
}
