import type { ErrorCode } from '../../errors.js'
import type { CallbackErrorCode } from '../../federation/outcomes.js'

/**
 * Everything the pages say about a result or a refusal, by fixed key (README, "Pages"): a query
 * (`?done=profile_saved`, `?error=account_exists`) only ever selects one of these texts, so no
 * text from a URL is ever shown.
 */

export type Notice = {
  kind: 'success' | 'error' | 'info'
  text: string
  /** A second line: the server's own explanation (a password policy's reason). */
  detail?: string
}

/** `?done=` keys. */
export const DONE_MESSAGES = {
  profile_saved: 'Your display name is saved.',
  password_changed: 'Your password is changed. Every other session has been signed out.',
  session_revoked: 'The session is signed out.',
  identity_unlinked: 'The identity is unlinked from your account.',
  signed_out: 'You are signed out.',
  signed_out_everywhere: 'You are signed out everywhere: every session of your account has ended.',
  device_approved: 'The device is logged in to your account. You can close this window.',
  device_denied: 'The device login is denied: the device gets no access.',
  email_verified: 'Your email address is verified.',
  verification_sent:
    'If that address belongs to an account that still needs verifying, a new link is on its way. ' +
    'Only the newest link works.',
  email_change_requested:
    'Check the new address: the change happens once you follow the link mailed there. ' +
    'Your current address got a notice with a way to cancel.',
  email_changed: 'Your email address is changed, and the new one is verified.',
  email_change_cancelled: 'The email change is cancelled: the account keeps its address.',
  reset_mail_sent:
    'If this address can receive mail from us, a message with the next step is on its way. ' +
    'The link in it works once, for 30 minutes.',
  password_reset: 'Your password is set. Every session has been signed out: sign in with it.',
  passkey_added: 'The passkey is added: you can sign in with it.',
  passkey_removed: 'The passkey is removed: it no longer signs in to your account.',
  totp_removed:
    'Two-step verification is off: signing in no longer asks for a code, and the recovery ' +
    'codes no longer work.',
} as const

export type DoneKey = keyof typeof DONE_MESSAGES

/** `?error=` keys: the federated callback's codes and the pages' own refusals. */
const ERROR_MESSAGES: Record<CallbackErrorCode | PageErrorCode, string> = {
  access_denied: 'The sign-in was cancelled at the provider.',
  provider_error: 'The provider’s answer could not be used. Try again in a moment.',
  account_exists:
    'An account with this email address already exists. Sign in to it with its password, ' +
    'then link the provider on your account page.',
  account_disabled: 'This account is disabled.',
  email_required:
    'The provider did not give a verified email address, so no account can be created with it.',
  link_required: 'This provider can only be linked to an account you are signed in to.',
  identity_taken: 'That provider account is already linked to another Tessera account.',
  provider_already_linked:
    'Your account already has an identity of this provider: unlink it first to link another.',
  session_ended: 'Your session ended before the provider answered. Sign in and try again.',
  invalid_oauth_state: 'This sign-in attempt is unknown, expired or already used. Start again.',
  invalid_login_code: 'This sign-in attempt expired or was already used. Start again.',
  invalid_credentials: 'The email address or password is wrong.',
  rate_limited: 'Too many attempts. Wait a few minutes and try again.',
  service_unavailable: 'The service is not available right now. Try again in a moment.',
  last_login_method:
    'This is the only way to sign in to your account: set a password or link another provider ' +
    'first.',
  not_found: 'That no longer exists: it may have been removed meanwhile.',
  email_taken: 'An account with this email address already exists. Sign in instead.',
  weak_password: 'Choose another password.',
  validation_failed: 'The form could not be read.',
  csrf_failed: 'This form was not sent from a page of this server. Reload the page and try again.',
  invalid_return_to: 'The application sent you here with a return address that is not allowed.',
  invalid_link_ticket:
    'This link is unknown, expired or already used. Links work once, for 5 minutes: ' +
    'ask the application for a new one.',
  invalid_email_token:
    'This link or code is unknown, expired or already used. Ask for a new mail; only the newest ' +
    'one works.',
  email_not_verified:
    'Your email address is not verified yet. Follow the link mailed to it, or have a new one sent.',
  reauthentication_required:
    'This change needs a recent sign-in: sign out, sign in again, then make the change.',
  invalid_reset_token:
    'This reset link is unknown, expired, already used, or replaced by a newer one. ' +
    'Request a new link.',
  passkey_invalid: 'The passkey was not accepted. Try again, or sign in another way.',
  challenge_expired: 'The passkey request expired or was already used. Try again.',
  passkey_limit_reached: 'Your account has as many passkeys as it can: remove one first.',
  invalid_user_code:
    'This code is unknown, expired or already used. Check the code your device shows, or start ' +
    'the login there again.',
}

type PageErrorCode = Extract<
  ErrorCode,
  | 'invalid_oauth_state'
  | 'invalid_login_code'
  | 'invalid_credentials'
  | 'rate_limited'
  | 'service_unavailable'
  | 'last_login_method'
  | 'not_found'
  | 'email_taken'
  | 'weak_password'
  | 'validation_failed'
  | 'csrf_failed'
  | 'invalid_return_to'
  | 'account_disabled'
  | 'invalid_link_ticket'
  | 'invalid_user_code'
  | 'invalid_email_token'
  | 'email_not_verified'
  | 'reauthentication_required'
  | 'invalid_reset_token'
  | 'passkey_invalid'
  | 'challenge_expired'
  | 'passkey_limit_reached'
>

/** The text of an `?error=` key, or undefined for anything that is not one. */
export function errorMessage(key: string | undefined): string | undefined {
  return key !== undefined && Object.hasOwn(ERROR_MESSAGES, key)
    ? ERROR_MESSAGES[key as keyof typeof ERROR_MESSAGES]
    : undefined
}

export function doneMessage(key: string | undefined): string | undefined {
  return key !== undefined && Object.hasOwn(DONE_MESSAGES, key)
    ? DONE_MESSAGES[key as DoneKey]
    : undefined
}

/** The notice a page shows for its `?done=` or `?error=` query, if it names a known key. */
export function queryNotice(query: { done?: string; error?: string }): Notice | undefined {
  const error = errorMessage(query.error)
  if (error !== undefined) return { kind: 'error', text: error }
  const done = doneMessage(query.done)
  if (done !== undefined) return { kind: 'success', text: done }
  return undefined
}

/**
 * What the pages say about a refusal: the fixed text of its code, with the server's own detail
 * where that is the useful part (the password policy's reason, which fields a form lacked).
 */
export function refusalNotice(error: { code: ErrorCode; detail: string; title: string }): Notice {
  const text = errorMessage(error.code) ?? `${error.title}.`
  const withDetail = error.code === 'weak_password' || error.code === 'validation_failed'
  return withDetail ? { kind: 'error', text, detail: error.detail } : { kind: 'error', text }
}
