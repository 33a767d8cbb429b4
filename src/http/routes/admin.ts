import { Hono } from 'hono'
import * as v from 'valibot'
import { assertSuperuser, toUserView } from '../../accounts/accounts.js'
import { promoteToSuperuser } from '../../accounts/promotion.js'
import { AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX, listAuditEvents } from '../../audit/query.js'
import { uuidParam, validate } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

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

/** `GET /v1/admin/audit`'s query (README, "Audit log"); unknown parameters are ignored. */
const AuditQuery = v.object({
  user_id: v.optional(v.pipe(v.string(), v.uuid('must be a user id (UUID)'), v.toLowerCase())),
  event: v.optional(v.pipe(v.string(), v.regex(/^[a-z_]{1,64}$/, 'must be an event name'))),
  since: v.optional(time),
  until: v.optional(time),
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

/** `/v1/admin/...`: superuser-only. */
export const adminRoutes = new Hono<AppEnv>()
  .use(requireUser)
  // Before anything else of the request is looked at, unknown admin paths included: to anyone
  // but a superuser the whole prefix answers 403 alike.
  .use(async (c, next) => {
    await assertSuperuser(c.get('tessera').db, c.get('claims').sub)
    await next()
  })
  .post('/users/:id/promote', async (c) => {
    const userId = uuidParam(c.req.param('id'), 'user')
    const claims = c.get('claims')
    const actor = { userId: claims.sub, sessionId: claims.sid }
    const user = await promoteToSuperuser(c.get('tessera'), actor, userId, clientContext(c))
    return c.json(toUserView(user))
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
