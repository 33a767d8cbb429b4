// How federated sign-ins end: what the flow answers (flow.ts) and the metric counts (metrics.ts),
// apart from both so that the metric, which the composition root makes, does not need the flow.

/** The error codes a callback hands to the client's redirect URI (`?error=<code>`). */
export type CallbackErrorCode =
  | 'access_denied'
  | 'provider_error'
  | 'account_exists'
  | 'account_disabled'
  | 'email_required'
  | 'link_required'
  | 'identity_taken'
  | 'provider_already_linked'
  | 'session_ended'

/**
 * How a federated sign-in ended: the callback's `?error=` code or `linked`, a refused state, a
 * refused or redeemed login code, an unreachable provider at authorize, or a rate limit on any of
 * the three routes. A started flow counts once, unless a rate-limited callback is retried.
 */
export type FederatedLoginOutcome =
  | 'ok'
  | 'linked'
  | CallbackErrorCode
  | 'invalid_oauth_state'
  | 'invalid_login_code'
  | 'service_unavailable'
  | 'rate_limited'
