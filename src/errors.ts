/**
 * Every failure a client can see, by its stable `code` (openapi.yaml). The HTTP status is a
 * function of the code, so callers throw a code and never choose a status themselves.
 */
export const ERROR_STATUS = {
  validation_failed: 400,
  weak_password: 400,
  invalid_oauth_state: 400,
  invalid_user_code: 400,
  // The OAuth 2 token-endpoint errors of the device grant (RFC 6749 §5.2, RFC 8628 §3.5): 400,
  // `invalid_client` included (it is 401 only for clients that authenticate with a header).
  authorization_pending: 400,
  slow_down: 400,
  access_denied: 400,
  expired_token: 400,
  invalid_grant: 400,
  invalid_client: 400,
  unsupported_grant_type: 400,
  // RFC 8707 §2 and RFC 6749 §5.2: an audience or scope this deployment does not grant.
  invalid_target: 400,
  invalid_scope: 400,
  // RFC 8693 token exchange: the presented personal access token (README, "Scripts, pipelines
  // and services"). Only the holder of the exact secret can tell these apart.
  invalid_subject_token: 400,
  personal_token_revoked: 400,
  personal_token_expired: 400,
  invalid_link_ticket: 400,
  invalid_return_to: 400,
  invalid_email_token: 400,
  invalid_reset_token: 400,
  invalid_cursor: 400,
  // README, "Passkeys": a ceremony's challenge handle that is unknown, spent or expired.
  challenge_expired: 400,
  invalid_mfa_code: 400,
  invalid_mfa_ticket: 400,
  factor_not_enrolled: 400,
  mfa_not_enrolled: 400,
  invalid_credentials: 401,
  passkey_invalid: 401,
  invalid_refresh_token: 401,
  refresh_token_reused: 401,
  unauthorized: 401,
  invalid_login_code: 401,
  invalid_client_credentials: 401,
  reauthentication_required: 401,
  // The password was right; the account has a second factor (README, "Second factors").
  mfa_required: 401,
  account_disabled: 403,
  csrf_failed: 403,
  forbidden: 403,
  insufficient_scope: 403,
  invalid_service_secret: 403,
  cors_origin_not_allowed: 403,
  not_verified: 403,
  permission_required: 403,
  email_not_verified: 403,
  // The token is fine but its session has no second factor: enrol or step up.
  mfa_step_up_required: 403,
  not_found: 404,
  method_not_allowed: 405,
  email_taken: 409,
  account_exists: 409,
  mfa_already_enrolled: 409,
  last_login_method: 409,
  // An admin action a superuser may not take on their own account (README, "Operating Tessera").
  cannot_target_self: 409,
  passkey_limit_reached: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  headers_too_large: 431,
  rate_limited: 429,
  internal_error: 500,
  service_unavailable: 503,
} as const

export type ErrorCode = keyof typeof ERROR_STATUS

const TITLES: Record<ErrorCode, string> = {
  validation_failed: 'Request validation failed',
  weak_password: 'Password does not meet the policy',
  invalid_oauth_state: 'Invalid or expired sign-in attempt',
  invalid_user_code: 'Invalid or expired user code',
  authorization_pending: 'Authorization pending',
  slow_down: 'Polling too fast',
  access_denied: 'Access denied',
  expired_token: 'Device code expired',
  invalid_grant: 'Invalid grant',
  invalid_client: 'Unknown client',
  unsupported_grant_type: 'Unsupported grant type',
  invalid_target: 'Unknown audience',
  invalid_scope: 'Scope not allowed',
  invalid_subject_token: 'Invalid personal access token',
  personal_token_revoked: 'Personal access token revoked',
  personal_token_expired: 'Personal access token expired',
  invalid_link_ticket: 'Invalid or expired link',
  invalid_return_to: 'Return address not allowed',
  invalid_email_token: 'Invalid or expired email link or code',
  invalid_reset_token: 'Invalid or expired reset token',
  invalid_cursor: 'Invalid page cursor',
  challenge_expired: 'Unknown, used or expired passkey challenge',
  invalid_mfa_code: 'Invalid second-factor code',
  invalid_mfa_ticket: 'Invalid or expired MFA ticket',
  factor_not_enrolled: 'Second factor not enrolled',
  mfa_not_enrolled: 'No second factor enrolled',
  invalid_credentials: 'Invalid email or password',
  passkey_invalid: 'Passkey not accepted',
  invalid_refresh_token: 'Invalid refresh token',
  refresh_token_reused: 'Refresh token reuse detected',
  unauthorized: 'Authentication required',
  invalid_login_code: 'Invalid login code',
  invalid_client_credentials: 'Invalid client credentials',
  reauthentication_required: 'Recent authentication required',
  mfa_required: 'Second factor required',
  account_disabled: 'Account disabled',
  csrf_failed: 'Cross-site request refused',
  forbidden: 'Forbidden',
  insufficient_scope: 'Insufficient scope',
  invalid_service_secret: 'Invalid service secret',
  cors_origin_not_allowed: 'Origin not allowed',
  not_verified: 'Account not verified',
  permission_required: 'Client lacks the permission',
  email_not_verified: 'Email address not verified',
  mfa_step_up_required: 'Multi-factor authentication required',
  not_found: 'Not found',
  method_not_allowed: 'Method not allowed',
  email_taken: 'Email already registered',
  account_exists: 'Account already exists',
  mfa_already_enrolled: 'Second factor already enrolled',
  last_login_method: 'Last way to log in',
  cannot_target_self: 'Not on your own account',
  passkey_limit_reached: 'Too many passkeys',
  payload_too_large: 'Request body too large',
  unsupported_media_type: 'Unsupported media type',
  headers_too_large: 'Request headers too large',
  rate_limited: 'Too many requests',
  internal_error: 'Internal server error',
  service_unavailable: 'Service unavailable',
}

export interface FieldError {
  field: string
  message: string
}

/**
 * The one error type the domain throws. `detail` is shown to people and must never contain a
 * secret; `cause` stays internal (logged, never serialised).
 */
export class TesseraError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly title: string
  readonly detail: string
  /** Seconds, for `rate_limited` (becomes `Retry-After`). */
  readonly retryAfter: number | undefined
  readonly errors: FieldError[] | undefined
  /** A bearer token was presented and is bad: RFC 6750 `error="invalid_token"`. */
  readonly invalidToken: boolean
  /**
   * Seconds, for `reauthentication_required`: how recent the account's authentication must be
   * (`max_age` in `WWW-Authenticate`, README "Recent authentication").
   */
  readonly maxAge: number | undefined
  /** For `mfa_required`: the ticket and factors of the second step (openapi.yaml). */
  readonly mfa: { mfa_ticket: string; factors: string[] } | undefined

  constructor(
    code: ErrorCode,
    detail?: string,
    options: {
      cause?: unknown
      retryAfter?: number
      errors?: FieldError[]
      invalidToken?: boolean
      maxAge?: number
      mfa?: { mfa_ticket: string; factors: string[] }
    } = {},
  ) {
    super(detail ?? TITLES[code], { cause: options.cause })
    this.name = 'TesseraError'
    this.code = code
    this.status = ERROR_STATUS[code]
    this.title = TITLES[code]
    this.detail = detail ?? TITLES[code]
    this.retryAfter = options.retryAfter
    this.errors = options.errors
    this.invalidToken = options.invalidToken ?? false
    this.maxAge = options.maxAge
    this.mfa = options.mfa
  }
}
