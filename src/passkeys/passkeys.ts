import type { WebAuthnCredential } from '@simplewebauthn/server'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database, Passkey } from '../db/schema.js'

/** What every passkey use case needs: the database, the clock and the relying party. */
export interface PasskeyDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'webauthn'>
}

/** At most this many passkeys per account (README, "Passkeys"): the list stays a list. */
export const MAX_PASSKEYS_PER_USER = 20

/** The passkeys of an account, oldest first. */
export function listPasskeys(db: Kysely<Database>, userId: string): Promise<Passkey[]> {
  return db
    .selectFrom('passkeys')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .orderBy('id')
    .execute()
}

/** The account's passkeys, ids only: a row here means a passkey is enrolled. */
export function passkeyIds(db: Kysely<Database>, userId: string) {
  return db.selectFrom('passkeys').select('id').where('user_id', '=', userId)
}

/** Whether the account has a passkey (the MFA step offers a passkey only then). */
export async function hasPasskeys(db: Kysely<Database>, userId: string): Promise<boolean> {
  return (await passkeyIds(db, userId).limit(1).executeTakeFirst()) !== undefined
}

/**
 * The RFC 8176 `amr` values a passkey proves: `hwk` (a key held in hardware) for a
 * single-device credential, `swk` for a backup-eligible one, which syncs as software between a
 * platform's devices; `mfa` either way, since WebAuthn with user verification is something held
 * and something known or been. For the MFA step's `amr` parameter.
 */
export function passkeyAmr(passkey: Pick<Passkey, 'device_type'>): ['hwk' | 'swk', 'mfa'] {
  return [passkey.device_type === 'multiDevice' ? 'swk' : 'hwk', 'mfa']
}

export function parseTransports(stored: string): string[] {
  const parsed: unknown = JSON.parse(stored)
  return Array.isArray(parsed) ? parsed.filter((t): t is string => typeof t === 'string') : []
}

/** A stored passkey as @simplewebauthn/server verifies against it. */
export function webAuthnCredential(passkey: Passkey): WebAuthnCredential {
  return {
    id: passkey.credential_id,
    publicKey: new Uint8Array(Buffer.from(passkey.public_key, 'base64url')),
    counter: Number(passkey.counter),
    transports: parseTransports(passkey.transports),
  }
}

/** The WebAuthn user handle of an account: its id's bytes (opaque, no personal data). */
export function userHandle(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId, 'utf8'))
}
