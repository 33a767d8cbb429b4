import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import { preparedQuery } from '../db/prepared.js'
import type { Database } from '../db/schema.js'

export type AuditEventName =
  | 'user_registered'
  | 'login_succeeded'
  | 'login_failed'
  | 'refresh_reuse_detected'
  | 'logout'
  | 'logout_all'
  | 'session_revoked'
  | 'password_changed'
  | 'password_reset_requested'
  | 'password_reset'
  | 'user_promoted'
  | 'user_disabled'
  | 'user_enabled'
  | 'account_type_changed'
  | 'verification_changed'
  | 'sessions_revoked_by_admin'
  | 'password_reset_forced'
  | 'user_deleted'
  | 'superuser_created'
  | 'key_published'
  | 'key_rotated'
  | 'key_revoked'
  | 'federated_login_failed'
  | 'identity_linked'
  | 'identity_unlinked'
  | 'reauthenticated'
  | 'device_approved'
  | 'device_denied'
  | 'client_created'
  | 'client_revoked'
  | 'client_authentication_failed'
  | 'personal_token_created'
  | 'personal_token_revoked'
  | 'personal_token_used'
  | 'email_verification_sent'
  | 'email_verified'
  | 'email_change_requested'
  | 'email_changed'
  | 'email_change_cancelled'
  | 'email_change_refused'
  | 'passkey_registered'
  | 'passkey_removed'
  | 'passkey_used'
  | 'passkey_failed'
  | 'mfa_enrolled'
  | 'mfa_disabled'
  | 'mfa_failed'
  | 'mfa_step_up'
  | 'mfa_reset'
  | 'recovery_code_used'
  | 'recovery_codes_regenerated'

export interface AuditEvent {
  event: AuditEventName
  userId?: string | null
  sessionId?: string | null
  ip?: string | null
  /** Structured context. Never a password, token, secret or key. */
  detail?: Record<string, string | number | boolean | null>
}

/** Appends one row to `audit_events`; pass a transaction to make it part of a larger change. */
export async function recordAudit(
  db: Kysely<Database>,
  clock: Clock,
  e: AuditEvent,
): Promise<void> {
  await insertAuditEvent.execute(db, {
    id: randomUUID(),
    at: clock(),
    event: e.event,
    userId: e.userId ?? null,
    sessionId: e.sessionId ?? null,
    ip: e.ip ?? null,
    detail: e.detail === undefined ? null : JSON.stringify(e.detail),
  })
}

/** Every change writes one (db/prepared.ts: compiled once, not per event). */
const insertAuditEvent = preparedQuery(
  (
    db,
    p: {
      id: string
      at: number
      event: AuditEventName
      userId: string | null
      sessionId: string | null
      ip: string | null
      detail: string | null
    },
  ) =>
    db.insertInto('audit_events').values({
      id: p.id,
      at: p.at,
      event: p.event,
      user_id: p.userId,
      session_id: p.sessionId,
      ip: p.ip,
      detail: p.detail,
    }),
)
