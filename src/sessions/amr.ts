/**
 * The authentication methods of a session (RFC 8176 `amr`; README, "Second factors"), stored on
 * its row space-separated and carried by every access token the session mints, refreshed ones
 * included, so a token says how its session's holder proved the account.
 */
export type AuthenticationMethod =
  /** A password. */
  | 'pwd'
  /** A one-time password: a TOTP code or a recovery code. */
  | 'otp'
  /** A federated provider. */
  | 'fed'
  /** A hardware-bound key (a passkey on a security key). */
  | 'hwk'
  /** A software-bound key (a synced passkey). */
  | 'swk'
  /** More than one factor, or a passkey with user verification. */
  | 'mfa'

/** The stored form (`sessions.amr`, `mfa_tickets.amr`); null for none. */
export function storedAmr(amr: readonly string[] | undefined): string | null {
  return amr === undefined || amr.length === 0 ? null : amr.join(' ')
}

/** The methods of a stored `amr`; undefined for none (sessions older than migration 0020). */
export function parseStoredAmr(stored: string | null | undefined): string[] | undefined {
  if (stored === null || stored === undefined || stored.length === 0) return undefined
  return stored.split(' ').filter((part) => part.length > 0)
}

/** True when the methods include a second factor (`mfa`). */
export function hasMfa(amr: readonly string[] | undefined): boolean {
  return amr?.includes('mfa') === true
}

/** `amr` with `added` and, since it now holds two factors, `mfa`; no method twice. */
export function withSecondFactor(
  amr: readonly string[] | undefined,
  added: AuthenticationMethod,
): string[] {
  return [...new Set([...(amr ?? []), added, 'mfa'])]
}
