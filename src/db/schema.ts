import type { Generated, Insertable, Selectable } from 'kysely'

/**
 * Table types. Times are epoch milliseconds (`bigint` columns, read back as numbers on both
 * dialects); booleans are 0/1 integers: the same SQL and the same values on SQLite and PostgreSQL.
 */
export interface Database {
  users: UsersTable
  identities: IdentitiesTable
  sessions: SessionsTable
  refresh_tokens: RefreshTokensTable
  signing_keys: SigningKeysTable
  audit_events: AuditEventsTable
  oauth_states: OAuthStatesTable
  login_codes: LoginCodesTable
  login_devices: LoginDevicesTable
  device_authorizations: DeviceAuthorizationsTable
  link_tickets: LinkTicketsTable
  passkeys: PasskeysTable
  webauthn_challenges: WebauthnChallengesTable
  revocation_log: RevocationLogTable
  revocation_log_head: RevocationLogHeadTable
  service_clients: ServiceClientsTable
  mail_queue: MailQueueTable
  password_resets: PasswordResetsTable
  mail_requests: MailRequestsTable
  personal_tokens: PersonalTokensTable
  email_tokens: EmailTokensTable
  prune_lease: PruneLeaseTable
  rate_limits: RateLimitsTable
  totp_credentials: TotpCredentialsTable
  recovery_codes: RecoveryCodesTable
  mfa_tickets: MfaTicketsTable
}

export type AccountType = 'regular' | 'academic' | 'service' | 'superuser'

export interface UsersTable {
  id: string
  email: string
  email_normalized: string
  password_hash: string | null
  display_name: string | null
  account_type: AccountType
  /** Academic status (CILogon), not the email's: that is `email_verified`. */
  verified: number
  /** 1 once the current address was proven by a mailed token or vouched for by a provider. */
  email_verified: Generated<number>
  disabled: number
  role: string | null
  created_at: number
  updated_at: number
  /** Bumped by a password change and by disabling: a login checked against an older one fails. */
  credential_version: Generated<number>
}

export interface IdentitiesTable {
  provider: string
  subject: string
  user_id: string
  email: string | null
  created_at: number
}

export interface SessionsTable {
  id: string
  user_id: string
  created_at: number
  last_used_at: number
  expires_at: number
  user_agent: string | null
  ip: string | null
  revoked_at: number | null
  revoked_reason: string | null
  /** Epoch ms the holder last re-proved the account; null: at the login (`created_at`). */
  authenticated_at: number | null
  /** Start (epoch ms) of the current window of the per-session refresh limit. */
  refresh_window_start: Generated<number>
  /** Refreshes counted in that window. */
  refresh_count: Generated<number>
  /** `api`: a refresh-token family; `browser`: a page session (README, "Pages"). */
  kind: Generated<SessionKind>
  /** Browser sessions: SHA-256 of the `tessera_session` cookie's secret; null for API ones. */
  cookie_hash: string | null
  /**
   * Space-separated RFC 8176 authentication methods of the session (`pwd`, `otp`, `fed`, `mfa`,
   * ...; README, "Second factors"), carried by every access token it mints; null for sessions
   * opened before migration 0020.
   */
  amr: string | null
}

/** `pat`, `job`: a personal access token, a job token (README, "Scripts, pipelines ..."). */
export type SessionKind = 'api' | 'browser' | PersonalTokenKind

export type PersonalTokenKind = 'pat' | 'job'

/** What a personal access token's or job token's session row does not hold (migration 0015). */
export interface PersonalTokensTable {
  /** The id of its session row, which the token's access tokens carry as `sid`. */
  id: string
  user_id: string
  kind: PersonalTokenKind
  name: string
  /** A PAT's first characters (`tsr_pat_` and four more); null for a job token. */
  prefix: string | null
  /** SHA-256 (hex) of a PAT's secret; null for a job token. */
  token_hash: string | null
  audience: string
  /** Space-separated scopes. */
  scope: string
  created_at: number
  /** The last exchange of a PAT; null until the first (and for job tokens). */
  last_used_at: number | null
  expires_at: number
}

/**
 * `superseded`: an unused child that the reuse interval of Tessera before migration 0009 replaced
 * when its parent was presented again. No longer written; rows may still have it, and presenting
 * one stays reuse (docs/refresh.md).
 */
export type RefreshTokenStatus = 'active' | 'rotated' | 'revoked' | 'superseded'

export interface RefreshTokensTable {
  id: string
  family_id: string
  user_id: string
  token_hash: string
  parent_id: string | null
  status: RefreshTokenStatus
  created_at: number
  expires_at: number
  used_at: number | null
  /**
   * While the reuse interval lasts after this token's rotation: the answer that rotation gave,
   * sealed (src/sessions/replay.ts). Null otherwise (docs/refresh.md, "The reuse interval").
   */
  replay_sealed: string | null
  /** Epoch ms: the end of that interval; null with `replay_sealed`. */
  replay_until: number | null
}

/** README, "Keys": next → active → retiring → retired, and revoked from any of them. */
export type SigningKeyStatus = 'next' | 'active' | 'retiring' | 'retired' | 'revoked'

export interface SigningKeysTable {
  kid: string
  public_paserk: string
  /** `k4.secret...` PASERK, or its AES-256-GCM envelope when a key-encryption key is set. */
  secret_key: string
  status: SigningKeyStatus
  created_at: number
  /**
   * A `next` key: when it is due to become active. Any other key: when it became active (null for
   * a next key withdrawn before that).
   */
  activates_at: number | null
  /** When a retiring key stops being published (and its tokens have all expired). */
  retire_after: number | null
  /** When `tessera keys revoke` withdrew the key. */
  revoked_at: number | null
}

export interface AuditEventsTable {
  id: string
  at: number
  event: string
  user_id: string | null
  session_id: string | null
  ip: string | null
  detail: string | null
}

/** One started federated login or link flow; single use (`used_at`), expiring. */
export interface OAuthStatesTable {
  state_hash: string
  provider: string
  code_verifier: string
  nonce: string | null
  redirect_uri: string
  /** Set for a link flow: the logged-in user the identity is added to. */
  link_user_id: string | null
  browser_hash: string
  /** The client's PKCE S256 challenge (README, "Federated login"); null only without PKCE. */
  client_code_challenge: string | null
  /** The client's opaque `state`, handed back on the redirect to it. */
  client_state: string | null
  /** Link flow: the session whose bearer token started it; it must be live at the callback. */
  link_session_id: string | null
  created_at: number
  expires_at: number
  used_at: number | null
}

/** One-time code a client swaps for a token pair after a federated login. */
export interface LoginCodesTable {
  code_hash: string
  user_id: string
  provider: string
  /** The client's PKCE S256 challenge from the flow; the exchange must present its verifier. */
  code_challenge: string | null
  /** Space-separated RFC 8176 methods its session opens with; null for its method's default. */
  amr: string | null
  created_at: number
  expires_at: number
  used_at: number | null
}

/** A device cookie (README, "Passwords and login"): its SHA-256 and the account it logged into. */
export interface LoginDevicesTable {
  token_hash: string
  user_id: string
  created_at: number
  expires_at: number
}

/**
 * One started device login (RFC 8628; README, "Device login"): `pending` until a signed-in user
 * approves or denies its user code, `redeemed` once the device got its token pair.
 */
export type DeviceAuthorizationStatus = 'pending' | 'approved' | 'denied' | 'redeemed'

export interface DeviceAuthorizationsTable {
  /** SHA-256 of the device code. */
  device_code_hash: string
  /** HMAC-SHA256 of the normalised user code (src/device/user-code.ts). */
  user_code_hash: string
  client_id: string
  /** The address and user agent of the device that asked, shown to the approving user. */
  client_ip: string | null
  client_user_agent: string | null
  status: DeviceAuthorizationStatus
  /** Seconds between polls; each slow_down adds 5. */
  interval_seconds: number
  last_polled_at: number | null
  /** The account that approved or denied, and the session it did so in. */
  user_id: string | null
  decided_by_session_id: string | null
  decided_at: number | null
  /** The approving session's space-separated `amr`, which the device's session takes. */
  amr: string | null
  created_at: number
  expires_at: number
}

/**
 * A single-use link URL's ticket (README, "Linking from an API client"): its SHA-256, the user
 * and session that asked for it, the provider to link and where the flow ends.
 */
export interface LinkTicketsTable {
  ticket_hash: string
  user_id: string
  session_id: string
  provider: string
  redirect_uri: string
  created_at: number
  expires_at: number
  used_at: number | null
}

/** A WebAuthn credential of an account (README, "Passkeys"). */
export interface PasskeysTable {
  id: string
  user_id: string
  /** base64url, as assertions name it. */
  credential_id: string
  /** The COSE public key, base64url. */
  public_key: string
  counter: number
  /** JSON array of transport names. */
  transports: string
  name: string
  device_type: 'singleDevice' | 'multiDevice'
  backed_up: number
  created_at: number
  last_used_at: number | null
}

export type Passkey = Selectable<PasskeysTable>

/** The challenge of one WebAuthn ceremony: SHA-256 of its handle, single use, 5 minutes. */
export interface WebauthnChallengesTable {
  id: string
  challenge: string
  purpose: 'register' | 'authenticate'
  user_id: string | null
  created_at: number
  expires_at: number
  used_at: number | null
}

/** What a revocation log row ends (docs/revocation.md). */
export type RevocationKind = 'session' | 'user' | 'key'

/**
 * One event that ended access: `subject` is the session id, the user id (every token issued
 * before `at`) or the signing key's `kid`. `seq` is the feed's cursor, in commit order.
 */
export interface RevocationLogTable {
  seq: number
  kind: RevocationKind
  subject: string
  at: number
}

/** One row (`id` 1): the last `seq` handed out; its row lock orders the writers. */
export interface RevocationLogHeadTable {
  id: number
  seq: number
}

/** Per-service credentials (README, "Service clients"); the secret only as its SHA-256. */
export interface ServiceClientsTable {
  id: string
  name: string
  secret_hash: string
  /** Comma-separated permissions (src/clients/clients.ts). */
  permissions: string
  created_at: number
  last_used_at: number | null
  revoked_at: number | null
}

/**
 * A single-use token of email ownership (README, "Email verification and change"): `verify` is
 * mailed to the account's address, `change` to the new address of an email change and `cancel`
 * to the old one; `email` is the address concerned (the new one for a change and its cancel).
 */
export type EmailTokenPurpose = 'verify' | 'change' | 'cancel'

export interface EmailTokensTable {
  /** SHA-256 of the token. */
  token_hash: string
  user_id: string
  purpose: EmailTokenPurpose
  email: string
  /** One email change's confirmation and cancellation share it; null for `verify`. */
  change_id: string | null
  created_at: number
  expires_at: number
  used_at: number | null
}

export type User = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type Session = Selectable<SessionsTable>
export type RefreshTokenRow = Selectable<RefreshTokensTable>
export type SigningKeyRow = Selectable<SigningKeysTable>

/** One mail to send (src/mail/queue.ts); deleted once delivered or given up. */
export interface MailQueueTable {
  id: string
  recipient: string
  /** A `MailTemplateName` (src/mail/templates). */
  template: string
  /** The template's data, JSON. */
  data: string
  created_at: number
  attempts: Generated<number>
  next_attempt_at: number
  /** The sender holding the row while it sends; null when nobody does. */
  claim: string | null
  claimed_until: number | null
}

/** A password reset token (src/accounts/password-reset.ts), by SHA-256. */
export interface PasswordResetsTable {
  token_hash: string
  user_id: string
  /** The user's credential version when issued: any password change since voids the token. */
  credential_version: number
  created_at: number
  expires_at: number
  used_at: number | null
}

/**
 * A request that mails an address, not resolved yet (src/accounts/mail-requests.ts): the same row
 * for every address; the server's background pass looks the address up and deletes the row.
 */
export interface MailRequestsTable {
  id: string
  /** A `MailRequestKind`: what the pass does with the address. */
  kind: string
  /** The address as the requester typed it (trimmed): an address without an account is mailed. */
  email: string
  email_normalized: string
  /** The requester's address, for the audit event the resolution writes. */
  ip: string | null
  created_at: number
}

/** One row (`id` 1): which prune pass may run now (src/retention/lease.ts). */
export interface PruneLeaseTable {
  id: number
  /** The pass holding the lease; null when none does. */
  holder: string | null
  /** Epoch ms from which the lease is free (a holder that died frees it by expiry). */
  until: number
  /** Epoch ms: the end of the last completed pass. */
  finished_at: number
}

/**
 * rate-limiter-flexible's counters (src/rate-limit/limits.ts), in its own layout. Only the
 * retention job reads it through Kysely, to delete the counters whose window ended.
 */
export interface RateLimitsTable {
  key: string
  points: number
  /** Epoch ms at which the window ends (the limiter's own clock: the system's). */
  expire: number | null
}

/** A user's TOTP credential (src/mfa/totp.ts); one per user. */
export interface TotpCredentialsTable {
  user_id: string
  /** The base32 secret, sealed under KEY_ENCRYPTION_KEY (bound to the user id). */
  secret: string
  created_at: number
  /** Null while enrolment waits for its first code. */
  confirmed_at: number | null
  /** The last RFC 6238 time step accepted: no step is accepted twice. */
  last_used_step: Generated<number>
}

/** One single-use recovery code (src/mfa/recovery-codes.ts), by SHA-256. */
export interface RecoveryCodesTable {
  id: string
  user_id: string
  code_hash: string
  created_at: number
  used_at: number | null
}

/** The ticket between a first factor and the second (src/mfa/tickets.ts), by SHA-256. */
export interface MfaTicketsTable {
  ticket_hash: string
  user_id: string
  /** `password` or the federated provider that proved the first factor. */
  method: string
  /** Space-separated `amr` of the first factor. */
  amr: string
  /** The credential version the password was checked against; null for a federated login. */
  credential_version: number | null
  audience: string | null
  scope: string | null
  created_at: number
  expires_at: number
  used_at: number | null
}
