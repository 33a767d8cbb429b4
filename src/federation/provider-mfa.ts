/**
 * Whether a provider's ID token asserts multi-factor authentication (README, "Second factors"),
 * from its `amr` (RFC 8176) or its `acr`. Only an operator's trust in the provider
 * (MFA_TRUST_PROVIDER_AMR) turns this into `mfa` on Tessera's session.
 */

/** RFC 8176 §2 methods by the factor they prove: something known, held, or been. */
const FACTOR_OF: Readonly<Record<string, 'knowledge' | 'possession' | 'inherence'>> = {
  pwd: 'knowledge',
  pin: 'knowledge',
  kba: 'knowledge',
  otp: 'possession',
  hwk: 'possession',
  swk: 'possession',
  sc: 'possession',
  sms: 'possession',
  tel: 'possession',
  fpt: 'inherence',
  face: 'inherence',
  iris: 'inherence',
  retina: 'inherence',
  vbm: 'inherence',
}

/**
 * `acr` values that name an MFA profile: REFEDS MFA (what CILogon's institutions assert) and the
 * OpenID PAPE multi-factor policy.
 */
const MFA_ACR_VALUES: readonly string[] = [
  'https://refeds.org/profile/mfa',
  'http://schemas.openid.net/pape/policies/2007/06/multi-factor',
]

/**
 * True for `amr` holding `mfa` or methods of two distinct factors (`pwd` and `otp`, not `otp`
 * and `sms`), or for an MFA `acr`. Anything malformed asserts nothing.
 */
export function assertsMfa(claims: Readonly<Record<string, unknown>>): boolean {
  if (typeof claims.acr === 'string' && MFA_ACR_VALUES.includes(claims.acr)) return true
  if (!Array.isArray(claims.amr)) return false
  const methods = claims.amr.filter((m): m is string => typeof m === 'string')
  if (methods.includes('mfa')) return true
  const factors = new Set(methods.map((m) => FACTOR_OF[m]).filter((f) => f !== undefined))
  return factors.size >= 2
}
