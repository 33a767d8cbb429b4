import { preparedQuery } from '../db/prepared.js'

/**
 * The statements of a refresh that rotates (docs/refresh.md, "One refresh, in order"), compiled
 * once (see db/prepared.ts). One definition for both paths that run them: the general transaction
 * of `rotateRefreshToken` (refresh.ts) and the synchronous one on SQLite (sqlite-rotation.ts).
 */

export interface LockedSession {
  id: string
  user_id: string
  expires_at: number
  refresh_window_start: number
  refresh_count: number
  amr: string | null
}

/**
 * The first statement of every refresh: the write lock on the presented token's session, which
 * orders this refresh against other refreshes and revocations of the same family (all of them
 * write the session row first), and on SQLite starts the transaction with a write. It also
 * counts the refresh in the session's fixed window (a new window once the old one is over).
 */
export const lockSession = preparedQuery(
  (db, p: { hash: string; now: number; windowOver: number }) =>
    db
      .updateTable('sessions')
      .set((eb) => ({
        last_used_at: p.now,
        refresh_window_start: eb
          .case()
          .when('refresh_window_start', '<=', p.windowOver)
          .then(p.now)
          .else(eb.ref('refresh_window_start'))
          .end(),
        refresh_count: eb
          .case()
          .when('refresh_window_start', '<=', p.windowOver)
          .then(1)
          .else(eb('refresh_count', '+', 1))
          .end(),
      }))
      .where('id', '=', (eb) =>
        eb.selectFrom('refresh_tokens').select('family_id').where('token_hash', '=', p.hash),
      )
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', p.now)
      .returning(['id', 'user_id', 'expires_at', 'refresh_window_start', 'refresh_count', 'amr']),
)
export const claimToken = preparedQuery((db, p: { hash: string; familyId: string; now: number }) =>
  db
    .updateTable('refresh_tokens')
    .set({ status: 'rotated', used_at: p.now })
    .where('token_hash', '=', p.hash)
    .where('family_id', '=', p.familyId)
    .where('status', '=', 'active')
    .where('expires_at', '>', p.now)
    .returning(['id', 'parent_id']),
)
export const userById = preparedQuery((db, p: { id: string }) =>
  db.selectFrom('users').selectAll().where('id', '=', p.id),
)
/** A live refresh token of a family: its first (`parentId` null, `startSession`) or a child. */
export const insertRefreshToken = preparedQuery(
  (
    db,
    p: {
      id: string
      familyId: string
      userId: string
      hash: string
      parentId: string | null
      now: number
      expiresAt: number
    },
  ) =>
    db.insertInto('refresh_tokens').values({
      id: p.id,
      family_id: p.familyId,
      user_id: p.userId,
      token_hash: p.hash,
      parent_id: p.parentId,
      status: 'active',
      created_at: p.now,
      expires_at: p.expiresAt,
      used_at: null,
    }),
)
