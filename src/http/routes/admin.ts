import { type Context, Hono } from 'hono'
import * as v from 'valibot'
import { toUserView } from '../../accounts/accounts.js'
import { promoteToSuperuser } from '../../accounts/promotion.js'
import { changeAccountStatus } from '../../admin/account-status.js'
import { ACCOUNT_TYPES, setAccountType } from '../../admin/account-type.js'
import { REASON_MAX_LENGTH } from '../../admin/actor.js'
import { deleteUser } from '../../admin/delete-user.js'
import { forcePasswordReset } from '../../admin/force-password-reset.js'
import { listUsers, MAX_PAGE_SIZE, QUERY_MAX_LENGTH } from '../../admin/list-users.js'
import { revokeSessionsOfUser } from '../../admin/revoke-sessions.js'
import { userDetail } from '../../admin/user-detail.js'
import { setVerification } from '../../admin/verification.js'
import { AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX, listAuditEvents } from '../../audit/query.js'
import { assertSuperuserPowers } from '../../mfa/policy.js'
import { adminResetSecondFactors } from '../../mfa/reset.js'
import { formatPasetoTime } from '../../paseto/time.js'
import { noControlCharacters, readJson, uuidParam, validate } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

/** A reason for a change to a person's account, kept in its audit event. */
const reasonField = v.pipe(
  v.string('must be a string'),
  v.trim(),
  noControlCharacters,
  v.nonEmpty('is required'),
  v.maxLength(REASON_MAX_LENGTH, `must be at most ${REASON_MAX_LENGTH} characters`),
)
const ReasonBody = v.object({ reason: reasonField })
const AccountTypeBody = v.object({
  account_type: v.picklist(ACCOUNT_TYPES, `must be one of ${ACCOUNT_TYPES.join(', ')}`),
  reason: reasonField,
})
const VerificationBody = v.object({
  verified: v.boolean('must be true or false'),
  reason: reasonField,
})

/** An RFC 3339 date-time (or a date: its midnight UTC) as epoch ms. */
const time = v.pipe(
  v.string(),
  v.maxLength(40, 'must be an RFC 3339 date-time'),
  v.regex(
    /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/i,
    'must be an RFC 3339 date-time, such as 2026-01-31T12:00:00Z',
  ),
  v.transform((s) => Date.parse(s)),
  v.check((ms) => Number.isFinite(ms), 'must be an RFC 3339 date-time'),
)
const instant = v.optional(time)

const flag = v.optional(
  v.pipe(
    v.picklist(['true', 'false'], 'must be true or false'),
    v.transform((s) => s === 'true'),
  ),
)
/** `GET /v1/admin/users`: unknown parameters are refused, so a misspelt filter is not ignored. */
const ListUsersQuery = v.strictObject(
  {
    limit: v.optional(
      v.pipe(
        v.string(),
        v.regex(/^[0-9]{1,3}$/, `must be a number from 1 to ${MAX_PAGE_SIZE}`),
        v.transform(Number),
        v.minValue(1, `must be a number from 1 to ${MAX_PAGE_SIZE}`),
        v.maxValue(MAX_PAGE_SIZE, `must be a number from 1 to ${MAX_PAGE_SIZE}`),
      ),
    ),
    cursor: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(200, 'must be at most 200 characters'),
        v.regex(/^[A-Za-z0-9_-]+$/, 'must be a cursor this list handed out'),
      ),
    ),
    account_type: v.optional(
      v.picklist(ACCOUNT_TYPES, `must be one of ${ACCOUNT_TYPES.join(', ')}`),
    ),
    verified: flag,
    email_verified: flag,
    disabled: flag,
    provider: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(32, 'must be at most 32 characters'),
        v.regex(/^[a-z0-9_-]+$/, 'must be a provider name'),
      ),
    ),
    created_after: instant,
    created_before: instant,
    q: v.optional(
      v.pipe(
        v.string(),
        noControlCharacters,
        v.maxLength(QUERY_MAX_LENGTH, `must be at most ${QUERY_MAX_LENGTH} characters`),
      ),
    ),
  },
  'is not a parameter of this list',
)

/** `GET /v1/admin/audit`'s query (README, "Audit log"); unknown parameters are ignored. */
const AuditQuery = v.object({
  user_id: v.optional(v.pipe(v.string(), v.uuid('must be a user id (UUID)'), v.toLowerCase())),
  event: v.optional(v.pipe(v.string(), v.regex(/^[a-z_]{1,64}$/, 'must be an event name'))),
  since: instant,
  until: instant,
  cursor: v.optional(v.pipe(v.string(), v.maxLength(100, 'must be a cursor of a previous page'))),
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d{1,4}$/, 'must be a whole number'),
      v.transform(Number),
      v.minValue(1, 'must be at least 1'),
      v.maxValue(AUDIT_PAGE_MAX, `must be at most ${AUDIT_PAGE_MAX}`),
    ),
    String(AUDIT_PAGE_DEFAULT),
  ),
})

/** `/v1/admin/...`: superuser-only (openapi.yaml, tag `admin`; README, "Operating Tessera"). */
export const adminRoutes = new Hono<AppEnv>()
  .use(requireUser)
  // Before anything else of the request is looked at, unknown admin paths included: to anyone
  // but a superuser the whole prefix answers 403 alike.
  // A superuser's powers need a session with a second factor (MFA_REQUIRED_FOR; README, "Second
  // factors"): `mfa_step_up_required` otherwise.
  .use(async (c, next) => {
    await assertSuperuserPowers(c.get('tessera'), c.get('claims'))
    await next()
  })
  .get('/users', async (c) => {
    const query = validate(ListUsersQuery, c.req.query())
    const page = await listUsers(
      c.get('tessera').db,
      {
        accountType: query.account_type,
        verified: query.verified,
        emailVerified: query.email_verified,
        disabled: query.disabled,
        provider: query.provider,
        createdAfter: query.created_after,
        createdBefore: query.created_before,
        q: query.q,
      },
      { cursor: query.cursor, limit: query.limit },
    )
    return c.json({ users: page.users, next_cursor: page.nextCursor })
  })
  .get('/users/:id', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const detail = await userDetail(c.get('tessera'), userId)
    return c.json({
      ...detail.user,
      identities: detail.identities.map((i) => ({
        provider: i.provider,
        email: i.email,
        created_at: formatPasetoTime(i.created_at),
      })),
      sessions: detail.sessions.map((s) => ({
        id: s.id,
        kind: s.kind,
        created_at: formatPasetoTime(s.created_at),
        last_used_at: formatPasetoTime(s.last_used_at),
        expires_at: formatPasetoTime(s.expires_at),
        user_agent: s.user_agent,
        ip: s.ip,
      })),
      audit_events: detail.auditEvents,
    })
  })
  .post('/users/:id/promote', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const user = await promoteToSuperuser(c.get('tessera'), actorOf(c), userId, clientContext(c))
    return c.json(toUserView(user))
  })
  .post('/users/:id/disable', accountStatusRoute(true))
  .post('/users/:id/enable', accountStatusRoute(false))
  .post('/users/:id/account-type', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const body = await readJson(c, AccountTypeBody)
    const user = await setAccountType(
      c.get('tessera'),
      actorOf(c),
      userId,
      { accountType: body.account_type, reason: body.reason },
      clientContext(c),
    )
    return c.json(toUserView(user))
  })
  .post('/users/:id/verification', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const body = await readJson(c, VerificationBody)
    const user = await setVerification(
      c.get('tessera'),
      actorOf(c),
      userId,
      { verified: body.verified, reason: body.reason },
      clientContext(c),
    )
    return c.json(toUserView(user))
  })
  .post('/users/:id/sessions/revoke', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    await revokeSessionsOfUser(c.get('tessera'), actorOf(c), userId, clientContext(c))
    return c.body(null, 204)
  })
  .post('/users/:id/password-reset', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const outcome = await forcePasswordReset(c.get('tessera'), actorOf(c), userId, clientContext(c))
    return c.json({ outcome }, 202)
  })
  .delete('/users/:id', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    await deleteUser(c.get('tessera'), actorOf(c), userId)
    return c.body(null, 204)
  })
  .post('/users/:id/mfa/reset', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const body = await readJson(c, ReasonBody)
    const claims = c.get('claims')
    const actor = { ...actorOf(c), amr: claims.amr }
    await adminResetSecondFactors(c.get('tessera'), actor, userId, body.reason, clientContext(c))
    return c.body(null, 204)
  })
  .get('/audit', async (c) => {
    const query = validate(AuditQuery, c.req.query())
    const page = await listAuditEvents(
      c.get('tessera').db,
      { userId: query.user_id, event: query.event, since: query.since, until: query.until },
      { cursor: query.cursor, limit: query.limit },
    )
    return c.json(page)
  })

/** `POST /users/{id}/disable` and `.../enable`: one rule, the state asked for. */
function accountStatusRoute(disabled: boolean) {
  return async (c: Context<AppEnv>) => {
    const userId = uuidParam(c.req.param('id') ?? '', 'user')
    const body = await readJson(c, ReasonBody)
    const change = { disabled, reason: body.reason }
    await changeAccountStatus(c.get('tessera'), actorOf(c), userId, change, clientContext(c))
    return c.body(null, 204)
  }
}

/** The superuser asking, by the session of their access token. */
function actorOf(c: { get(key: 'claims'): { sub: string; sid: string } }) {
  const claims = c.get('claims')
  return { userId: claims.sub, sessionId: claims.sid }
}
