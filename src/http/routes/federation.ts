import { type Context, Hono } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import * as v from 'valibot'
import { OAUTH_PROVIDERS } from '../../config/index.js'
import { TesseraError } from '../../errors.js'
import {
  STATE_TTL_SECONDS,
  beginFlow,
  browserSecretFor,
  completeFlow,
  exchangeLoginCode,
  unlinkIdentity,
} from '../../federation/flow.js'
import type { Limiter } from '../../rate-limit/limits.js'
import { hasControlCharacters } from '../../text.js'
import { noControlCharacters, readJson } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

/** Binds a started flow to the browser that started it (SECURITY.md, "Federation"). */
const BROWSER_COOKIE = 'tessera_oauth_browser'
const ExchangeBody = v.object({ code: v.pipe(v.string('must be a string'), noControlCharacters, v.maxLength(200, 'is too long')) })

/**
 * Counts the request against its per-address limit (RATE_LIMIT_OAUTH_PER_IP) before anything
 * else: a refused request stores no state, calls no provider and spends no state, so a callback
 * refused here can be retried with the same URL once the window allows.
 */
async function limitPerIp(c: Context<AppEnv>, limiter: Limiter, provider: string | null): Promise<void> {
  try {
    await limiter.consume(clientContext(c).ip ?? 'unknown')
  } catch (error) {
    if (error instanceof TesseraError && error.code === 'rate_limited') {
      c.get('tessera').federationMetrics.count(provider, 'rate_limited')
    }
    throw error
  }
}

/** `/v1/user/...` federated login (API.md, "Federated login"). Disabled providers are 404. */
export const federationRoutes = new Hono<AppEnv>()
  .get('/authenticate/:provider/authorize', async (c) => {
    const t = c.get('tessera')
    await limitPerIp(c, t.limits.oauthAuthorizePerIp, c.req.param('provider'))
    const provider = t.federation.get(c.req.param('provider'))
    if (provider === undefined) throw new TesseraError('not_found', 'No such provider is enabled')
    // With a bearer token this is a link flow for that user; a bad token is refused, never
    // silently turned into a login flow.
    let linkUserId: string | null = null
    if (c.req.header('authorization') !== undefined) {
      await requireUser(c, async () => {})
      linkUserId = c.get('claims').sub
    }
    const redirectUri = c.req.query('redirect_uri')
    if (redirectUri === undefined || redirectUri === '') {
      throw new TesseraError('validation_failed', 'redirect_uri is required', {
        errors: [{ field: 'redirect_uri', message: 'is required' }],
      })
    }
    if (hasControlCharacters(redirectUri)) {
      throw new TesseraError('validation_failed', 'redirect_uri: must not contain control characters', {
        errors: [{ field: 'redirect_uri', message: 'must not contain control characters' }],
      })
    }
    const browserSecret = browserSecretFor(getCookie(c, BROWSER_COOKIE))
    const url = await beginFlow(t, { provider, redirectUri, linkUserId, browserSecret })
    setCookie(c, BROWSER_COOKIE, browserSecret, {
      httpOnly: true,
      secure: t.config.issuer.startsWith('https://'),
      // Lax: the callback is a top-level GET navigation from the provider's site.
      sameSite: 'Lax',
      path: '/v1/user/authenticate',
      maxAge: STATE_TTL_SECONDS,
    })
    if (/\bapplication\/json\b/i.test(c.req.header('accept') ?? '')) {
      return c.json({ authorization_url: url.toString() })
    }
    return c.redirect(url.toString(), 302)
  })

  .get('/authenticate/:provider/callback', async (c) => {
    const t = c.get('tessera')
    await limitPerIp(c, t.limits.oauthCallbackPerIp, c.req.param('provider'))
    const provider = t.federation.get(c.req.param('provider'))
    if (provider === undefined) throw new TesseraError('not_found', 'No such provider is enabled')
    const target = await completeFlow(t, {
      provider,
      callbackParameters: new URL(c.req.url).searchParams,
      browserSecret: getCookie(c, BROWSER_COOKIE),
      client: clientContext(c),
    })
    return c.redirect(target, 302)
  })

  .post('/auth/oauth/exchange', async (c) => {
    const t = c.get('tessera')
    await limitPerIp(c, t.limits.oauthExchangePerIp, null)
    const body = await readJson(c, ExchangeBody)
    return c.json(await exchangeLoginCode(t, body.code, clientContext(c)))
  })

  .delete('/identities/:provider', requireUser, async (c) => {
    const t = c.get('tessera')
    const provider = c.req.param('provider')
    // Only a provider name can name a linked identity; anything else is 404 without a query.
    if (!(OAUTH_PROVIDERS as readonly string[]).includes(provider)) throw new TesseraError('not_found', 'No such provider')
    await unlinkIdentity(t, c.get('claims').sub, provider, clientContext(c))
    return c.body(null, 204)
  })
