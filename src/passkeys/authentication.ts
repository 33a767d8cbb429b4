import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialRequestOptionsJSON,
  VerifiedAuthenticationResponse,
} from '@simplewebauthn/server'
import { getUser } from '../accounts/accounts.js'
import { recordAudit } from '../audit/audit.js'
import type { Passkey, User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { RateLimits } from '../rate-limit/limits.js'
import type { ClientContext } from '../sessions/sessions.js'
import {
  CHALLENGE_TTL_SECONDS,
  claimChallenge,
  newChallenge,
  storeChallenge,
} from './challenges.js'
import {
  listPasskeys,
  type PasskeyDeps,
  passkeyAmr,
  userHandle,
  webAuthnCredential,
} from './passkeys.js'
import { webauthn } from './webauthn.js'

export interface AuthenticationOptions {
  /** For `navigator.credentials.get()` (through @simplewebauthn/browser). */
  options: PublicKeyCredentialRequestOptionsJSON
  /** Names the challenge: sent back with the authenticator's assertion. */
  challenge: string
  /** Epoch ms. */
  expiresAt: number
}

export type PasskeySignInDeps = PasskeyDeps & { limits: Pick<RateLimits, 'loginPerIp'> }

/** A verified assertion: the passkey that made it and what it proves (`passkeyAmr`). */
export interface VerifiedPasskey {
  passkeyId: string
  amr: ReturnType<typeof passkeyAmr>
}

const invalid = (cause?: unknown) =>
  new TesseraError('passkey_invalid', 'The passkey’s answer was not accepted', { cause })

/**
 * Options for a passwordless sign-in (README, "Passkeys"): no user is named, the browser offers
 * the discoverable credentials it holds for the relying party. Counted against the per-address
 * login budget (RATE_LIMIT_LOGIN_PER_IP): every attempt needs options first, and each costs a row.
 */
export async function passkeySignInOptions(
  t: PasskeySignInDeps,
  client: ClientContext,
): Promise<AuthenticationOptions> {
  await t.limits.loginPerIp.consume(client.ip ?? 'unknown')
  const options = await (await webauthn()).generateAuthenticationOptions({
    rpID: t.config.webauthn.rpId,
    challenge: newChallenge(),
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    userVerification: 'required',
  })
  const stored = await storeChallenge(t, 'authenticate', null, options.challenge)
  return { options, challenge: stored.handle, expiresAt: stored.expiresAt }
}

/**
 * A passwordless sign-in's assertion, verified: the account whose passkey made it. User
 * verification is required (the passkey alone is both factors). The caller opens the session
 * (`openSession(..., 'passkey')` or a browser session) with `amr` from the answer.
 */
export async function verifyPasskeySignIn(
  t: PasskeyDeps,
  input: { challenge: string; response: AuthenticationResponseJSON },
  client: ClientContext,
): Promise<VerifiedPasskey & { user: User }> {
  const expectedChallenge = await claimChallenge(t, input.challenge, 'authenticate', null)
  const passkey = await t.db
    .selectFrom('passkeys')
    .selectAll()
    .where('credential_id', '=', input.response.id)
    .executeTakeFirst()
  // The user handle the authenticator keeps with a discoverable credential names its account.
  const handle = input.response.response.userHandle
  if (
    passkey === undefined ||
    (handle !== undefined &&
      handle !== Buffer.from(userHandle(passkey.user_id)).toString('base64url'))
  ) {
    await recordFailure(t, passkey?.user_id ?? null, client, 'unknown_credential')
    throw invalid()
  }
  const verified = await verifyAssertion(t, passkey, expectedChallenge, input.response, {
    requireUserVerification: true,
    client,
  })
  const user = await getUser(t.db, passkey.user_id)
  if (user.disabled !== 0) throw new TesseraError('account_disabled', 'This account is disabled')
  return { ...verified, user }
}

/**
 * Options for the MFA step of `userId` (README, "Passkeys"): `allowCredentials` names that
 * account's passkeys, so the browser asks for one of them only. User verification is preferred,
 * not required: a password (or provider) proved the first factor already.
 */
export async function authenticationOptionsForUser(
  t: PasskeyDeps,
  userId: string,
): Promise<AuthenticationOptions> {
  const passkeys = await listPasskeys(t.db, userId)
  if (passkeys.length === 0) throw new TesseraError('not_found', 'This account has no passkey')
  const options = await (await webauthn()).generateAuthenticationOptions({
    rpID: t.config.webauthn.rpId,
    challenge: newChallenge(),
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    userVerification: 'preferred',
    allowCredentials: passkeys.map((p) => {
      const transports = webAuthnCredential(p).transports
      return transports === undefined || transports.length === 0
        ? { id: p.credential_id }
        : { id: p.credential_id, transports }
    }),
  })
  const stored = await storeChallenge(t, 'authenticate', userId, options.challenge)
  return { options, challenge: stored.handle, expiresAt: stored.expiresAt }
}

/**
 * The MFA step's passkey check: the assertion must answer a challenge made for `userId` by
 * `authenticationOptionsForUser` (single use, 5 minutes) with one of that account's passkeys.
 * Throws `challenge_expired` or `passkey_invalid`; answers the passkey and its `amr`.
 */
export async function verifyPasskeyForUser(
  t: PasskeyDeps,
  input: { userId: string; challenge: string; response: AuthenticationResponseJSON },
  client: ClientContext = { ip: null, userAgent: null },
): Promise<VerifiedPasskey> {
  const expectedChallenge = await claimChallenge(t, input.challenge, 'authenticate', input.userId)
  const passkey = await t.db
    .selectFrom('passkeys')
    .selectAll()
    .where('credential_id', '=', input.response.id)
    .where('user_id', '=', input.userId)
    .executeTakeFirst()
  if (passkey === undefined) {
    await recordFailure(t, input.userId, client, 'unknown_credential')
    throw invalid()
  }
  return verifyAssertion(t, passkey, expectedChallenge, input.response, {
    requireUserVerification: false,
    client,
  })
}

/**
 * The checks every assertion passes (@simplewebauthn/server): type, challenge, the issuer's
 * origin, the relying-party id's hash, the signature with the stored key, user presence, user
 * verification when asked, and the signature counter. A counter that did not grow past the
 * stored one (when either is non-zero) means a cloned authenticator or a replayed assertion:
 * the library refuses it and so does Tessera, recording `passkey_failed` with reason
 * `counter_regressed` (README, "Passkeys"); synced passkeys report 0 always and pass. On success
 * the new counter and `last_used_at` are stored, and `passkey_used` recorded.
 */
async function verifyAssertion(
  t: PasskeyDeps,
  passkey: Passkey,
  expectedChallenge: string,
  response: AuthenticationResponseJSON,
  options: { requireUserVerification: boolean; client: ClientContext },
): Promise<VerifiedPasskey> {
  const { verifyAuthenticationResponse } = await webauthn()
  let verified: VerifiedAuthenticationResponse
  try {
    verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge,
      expectedOrigin: t.config.webauthn.origin,
      expectedRPID: t.config.webauthn.rpId,
      credential: webAuthnCredential(passkey),
      requireUserVerification: options.requireUserVerification,
    })
  } catch (error) {
    const counter = error instanceof Error && /counter value/i.test(error.message)
    await recordFailure(
      t,
      passkey.user_id,
      options.client,
      counter ? 'counter_regressed' : 'not_verified',
      passkey.id,
    )
    throw invalid(error)
  }
  if (!verified.verified) {
    await recordFailure(t, passkey.user_id, options.client, 'not_verified', passkey.id)
    throw invalid()
  }
  const info = verified.authenticationInfo
  const now = t.clock()
  const updated = await t.db
    .updateTable('passkeys')
    .set({
      counter: info.newCounter,
      backed_up: info.credentialBackedUp ? 1 : 0,
      last_used_at: now,
    })
    .where('id', '=', passkey.id)
    // Of two assertions racing with one counter value, only the first is counted.
    .where('counter', '=', passkey.counter)
    .executeTakeFirst()
  if (updated.numUpdatedRows === 0n) {
    await recordFailure(t, passkey.user_id, options.client, 'concurrent_use', passkey.id)
    throw invalid()
  }
  await recordAudit(t.db, t.clock, {
    event: 'passkey_used',
    userId: passkey.user_id,
    ip: options.client.ip,
    detail: { passkey: passkey.id },
  })
  return { passkeyId: passkey.id, amr: passkeyAmr(passkey) }
}

function recordFailure(
  t: PasskeyDeps,
  userId: string | null,
  client: ClientContext,
  reason: string,
  passkeyId?: string,
): Promise<void> {
  return recordAudit(t.db, t.clock, {
    event: 'passkey_failed',
    userId,
    ip: client.ip,
    detail: passkeyId === undefined ? { reason } : { reason, passkey: passkeyId },
  })
}
