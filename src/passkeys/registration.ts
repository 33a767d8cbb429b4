import { randomUUID } from 'node:crypto'
import type {
  PublicKeyCredentialCreationOptionsJSON,
  RegistrationResponseJSON,
  VerifiedRegistrationResponse,
} from '@simplewebauthn/server'
import { getUser } from '../accounts/accounts.js'
import {
  type RecentAuthenticationDeps,
  requireRecentAuthentication,
} from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import { isUniqueViolation } from '../db/errors.js'
import type { Passkey } from '../db/schema.js'
import { inTransaction } from '../db/transaction.js'
import { TesseraError } from '../errors.js'
import type { ClientContext } from '../sessions/sessions.js'
import {
  CHALLENGE_TTL_SECONDS,
  claimChallenge,
  newChallenge,
  storeChallenge,
} from './challenges.js'
import { listPasskeys, MAX_PASSKEYS_PER_USER, type PasskeyDeps, userHandle } from './passkeys.js'
import { webauthn } from './webauthn.js'

export type RegistrationDeps = PasskeyDeps & RecentAuthenticationDeps

export interface RegistrationOptions {
  /** For `navigator.credentials.create()` (through @simplewebauthn/browser). */
  options: PublicKeyCredentialCreationOptionsJSON
  /** Names the challenge: sent back with the authenticator's answer. */
  challenge: string
  /** Epoch ms. */
  expiresAt: number
}

/** The COSE algorithms a passkey may use: Ed25519, ES256, RS256. */
const SUPPORTED_ALGORITHMS = [-8, -7, -257]

/**
 * Options to register a passkey for the session's user (README, "Passkeys"). A passkey is a new
 * way into the account, so the session must have proved the account recently (README, "Recent
 * authentication"), as linking an identity must.
 *
 * Discoverable credentials only (`residentKey: required`), so every passkey also signs in
 * without an email address; user verification `required`, so every passkey alone is two
 * factors (held, and known or been) and can sign in without the password. The account's
 * passkeys are excluded: an authenticator that already holds one is not registered twice.
 */
export async function registrationOptions(
  t: RegistrationDeps,
  session: { sub: string; sid: string },
): Promise<RegistrationOptions> {
  await requireRecentAuthentication(t, session.sid)
  const user = await getUser(t.db, session.sub)
  const existing = await listPasskeys(t.db, user.id)
  refuseOverLimit(existing.length)
  const options = await (await webauthn()).generateRegistrationOptions({
    rpName: t.config.webauthn.rpName,
    rpID: t.config.webauthn.rpId,
    userName: user.email,
    userID: userHandle(user.id),
    userDisplayName: user.display_name ?? user.email,
    challenge: newChallenge(),
    timeout: CHALLENGE_TTL_SECONDS * 1000,
    attestationType: 'none',
    excludeCredentials: existing.map((p) => ({ id: p.credential_id })),
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    // Named rather than the library's default, which grows with the runtime (ML-DSA where Node
    // has it): every replica, whatever its Node, must verify every passkey, and the answers stay
    // within the body limits (README, "Passkeys").
    supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
  })
  const stored = await storeChallenge(t, 'register', user.id, options.challenge)
  return { options, challenge: stored.handle, expiresAt: stored.expiresAt }
}

function refuseOverLimit(count: number): void {
  if (count >= MAX_PASSKEYS_PER_USER) {
    throw new TesseraError(
      'passkey_limit_reached',
      `An account has at most ${MAX_PASSKEYS_PER_USER} passkeys: remove one first`,
    )
  }
}

/**
 * Verifies the authenticator's answer to `registrationOptions` and stores the passkey under
 * `name`. The challenge is spent first (single use, this user's, 5 minutes); the recent
 * authentication is checked again, since it may have lapsed meanwhile. The answer must come from
 * the issuer's origin for the relying-party id, with user verification. The count is checked
 * again under the user's row lock, so concurrent registrations never pass the limit.
 */
export async function registerPasskey(
  t: RegistrationDeps,
  session: { sub: string; sid: string },
  input: { name: string; challenge: string; response: RegistrationResponseJSON },
  client: ClientContext,
): Promise<Passkey> {
  const expectedChallenge = await claimChallenge(t, input.challenge, 'register', session.sub)
  await requireRecentAuthentication(t, session.sid)
  const { verifyRegistrationResponse } = await webauthn()
  let verified: VerifiedRegistrationResponse
  try {
    verified = await verifyRegistrationResponse({
      response: input.response,
      expectedChallenge,
      expectedOrigin: t.config.webauthn.origin,
      expectedRPID: t.config.webauthn.rpId,
      requireUserVerification: true,
    })
  } catch (error) {
    throw new TesseraError('passkey_invalid', 'The authenticator’s answer did not verify', {
      cause: error,
    })
  }
  if (!verified.verified) {
    throw new TesseraError('passkey_invalid', 'The authenticator’s answer did not verify')
  }
  const info = verified.registrationInfo
  const now = t.clock()
  const passkey: Passkey = {
    id: randomUUID(),
    user_id: session.sub,
    credential_id: info.credential.id,
    public_key: Buffer.from(info.credential.publicKey).toString('base64url'),
    counter: info.credential.counter,
    transports: JSON.stringify(info.credential.transports ?? []),
    name: input.name,
    device_type: info.credentialDeviceType,
    backed_up: info.credentialBackedUp ? 1 : 0,
    created_at: now,
    last_used_at: null,
  }
  try {
    await inTransaction(t.db, async (tx) => {
      await tx
        .updateTable('users')
        // A write that changes nothing: it only takes the row lock (both dialects).
        .set((eb) => ({ credential_version: eb.ref('credential_version') }))
        .where('id', '=', session.sub)
        .execute()
      const count = await tx
        .selectFrom('passkeys')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('user_id', '=', session.sub)
        .executeTakeFirstOrThrow()
      refuseOverLimit(Number(count.n))
      await tx.insertInto('passkeys').values(passkey).execute()
      await recordAudit(tx, t.clock, {
        event: 'passkey_registered',
        userId: session.sub,
        sessionId: session.sid,
        ip: client.ip,
        detail: { passkey: passkey.id, device_type: passkey.device_type },
      })
    })
  } catch (error) {
    // The credential is another passkey's already (of this account or, impossibly, another's).
    if (isUniqueViolation(error)) {
      throw new TesseraError('passkey_invalid', 'This passkey is registered already', {
        cause: error,
      })
    }
    throw error
  }
  return passkey
}
