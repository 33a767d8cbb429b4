import { Hono } from 'hono'
import * as v from 'valibot'
import { formatPasetoTime } from '../../paseto/time.js'
import {
  createPersonalToken,
  listPersonalTokens,
  type PersonalTokenView,
  revokePersonalTokens,
} from '../../personal-tokens/personal-tokens.js'
import { noControlCharacters, readJson, uuidParam } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

const CreateTokenBody = v.object({
  name: v.pipe(
    v.string('must be a string'),
    v.trim(),
    noControlCharacters,
    v.nonEmpty('is required'),
    v.maxLength(100, 'must be at most 100 characters'),
  ),
  kind: v.exactOptional(v.picklist(['pat', 'job'], 'must be pat or job')),
  audience: v.exactOptional(
    v.pipe(
      v.string('must be a string'),
      noControlCharacters,
      v.nonEmpty('must not be empty'),
      v.maxLength(200, 'must be at most 200 characters'),
    ),
  ),
  scopes: v.exactOptional(
    v.pipe(
      v.array(
        v.pipe(
          v.string('must be a string'),
          v.regex(/^[a-z][a-z0-9_:.-]{0,63}$/, 'must be a scope name'),
        ),
        'must be an array of scope names',
      ),
      v.minLength(1, 'must name at least one scope'),
      v.maxLength(20, 'must name at most 20 scopes'),
    ),
  ),
  // Never unlimited: the longest is PAT_MAX_LIFETIME or JOB_TOKEN_MAX_TTL (checked in the domain).
  expires_in: v.exactOptional(
    v.pipe(
      v.number('must be a number of seconds'),
      v.integer('must be a whole number of seconds'),
      v.minValue(60, 'must be at least 60'),
      v.maxValue(5 * 31_536_000, 'is too long'),
    ),
  ),
})

function tokenView(token: PersonalTokenView) {
  return {
    id: token.id,
    kind: token.kind,
    name: token.name,
    prefix: token.prefix,
    audience: token.audience,
    scopes: token.scopes,
    created_at: formatPasetoTime(token.created_at),
    last_used_at: token.last_used_at === null ? null : formatPasetoTime(token.last_used_at),
    expires_at: formatPasetoTime(token.expires_at),
  }
}

/**
 * `/v1/user/tokens`: personal access tokens and job tokens (README, "Scripts, pipelines and
 * services"). Made and managed from a login session; a secret is in one answer only.
 */
export const personalTokenRoutes = new Hono<AppEnv>()
  .post('/tokens', requireUser, async (c) => {
    const body = await readJson(c, CreateTokenBody)
    const created = await createPersonalToken(
      c.get('tessera'),
      c.get('claims'),
      {
        kind: body.kind ?? 'pat',
        name: body.name,
        audience: body.audience,
        scopes: body.scopes,
        expiresIn: body.expires_in,
      },
      clientContext(c),
    )
    if (created.kind === 'pat')
      return c.json({ ...tokenView(created.view), token: created.secret }, 201)
    return c.json(
      {
        ...tokenView(created.view),
        access_token: created.accessToken,
        token_type: 'Bearer',
        expires_in: created.expiresIn,
      },
      201,
    )
  })

  .get('/tokens', requireUser, async (c) => {
    const tokens = await listPersonalTokens(c.get('tessera'), c.get('claims'))
    return c.json({ tokens: tokens.map(tokenView) })
  })

  .delete('/tokens', requireUser, async (c) => {
    const revoked = await revokePersonalTokens(
      c.get('tessera'),
      c.get('claims'),
      'all',
      clientContext(c),
    )
    return c.json({ revoked })
  })

  .delete('/tokens/:id', requireUser, async (c) => {
    const id = uuidParam(c.req.param('id'), 'live token')
    await revokePersonalTokens(c.get('tessera'), c.get('claims'), { id }, clientContext(c))
    return c.body(null, 204)
  })
