/**
 * Why a token was refused. A closed union, so `switch (err.reason)` narrows; the message is for
 * people and may change, the reason is the contract.
 *
 * - `malformed`: not a PASETO at all, wrong number of segments, empty segments, bad or
 *   non-canonical base64url, over-long token.
 * - `unsupported_token`: a PASETO whose header is anything but exactly `v4.public.` (other
 *   versions, `local` purpose, other casing).
 * - `bad_footer`: footer missing, over 512 bytes, not a JSON object, too deep, duplicate keys, or
 *   without a string `kid` in `k4.pid` form.
 * - `unknown_key`: the `kid` is not in the verifier's key set.
 * - `bad_signature`: the Ed25519 signature does not verify with the key named by `kid`.
 * - `invalid_claims`: the signed payload is not a JSON object with unique keys, or a claim has the
 *   wrong type or format (see `verifyAccessToken`).
 * - `expired`, `not_yet_valid`, `issued_in_future`: `exp`, `nbf`, `iat` against the clock (with
 *   the allowed skew).
 * - `lifetime_too_long`: `exp` is further from `iat`, or from now, than the verifier's maximum
 *   token lifetime (`maxLifetimeSeconds`).
 * - `wrong_issuer`, `wrong_audience`: `iss` or `aud` differ from what the verifier expects.
 * - `revoked`: a valid token that Tessera's revocation feed has revoked: its session ended, its
 *   user was disabled after it was issued, or its signing key was revoked (only with
 *   `createVerifier(..., { revocations })`, and at Tessera's `/v1/authz`).
 */
export type TokenErrorReason =
  | 'malformed'
  | 'unsupported_token'
  | 'bad_footer'
  | 'unknown_key'
  | 'bad_signature'
  | 'invalid_claims'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'lifetime_too_long'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'revoked'

/** A token was refused; `reason` says why. `cause`, when present, is for logs, not for clients. */
export class TokenError extends Error {
  readonly reason: TokenErrorReason

  constructor(reason: TokenErrorReason, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'TokenError'
    this.reason = reason
  }
}
