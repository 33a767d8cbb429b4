import { type Context, Hono } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import * as v from 'valibot'
import { requireRecentAuthentication } from '../../accounts/reauthenticate.js'
import { OAUTH_PROVIDERS } from '../../config/index.js'
import { TesseraError } from '../../errors.js'
import {
  beginFlow,
  browserCookieName,
  completeFlow,
  exchangeLoginCode,
  STATE_TTL_SECONDS,
  unlinkIdentity,
} from '../../federation/flow.js'
import type { Limiter } from '../../rate-limit/limits.js'
import { hasControlCharacters } from '../../text.js'
import { noControlCharacters, readJson } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'

/** Where the browser-binding cookies live: only authorize and callback ever see them. */
const BROWSER_COOKIE_PATH = '/v1/user/authenticate'
const ExchangeBody = v.object({
  code: v.pipe(v.string('must be a string'), noControlCharacters, v.maxLength(200, 'is too long')),
  // Checked against the code's challenge in the domain: a malformed verifier is a wrong one.
  code_verifier: v.exactOptional(
    v.pipe(v.string('must be a string'), noControlCharacters, v.maxLength(200, 'is too long')),
  ),
})

/**
 * Counts the request against its per-address limit (RATE_LIMIT_OAUTH_PER_IP) before anything
 * else: a refused request stores no state, calls no provider and spends no state, so a callback
 * refused here can be retried with the same URL once the window allows.
 */
export async function limitPerIp(
  c: Context<AppEnv>,
  limiter: Limiter,
  provider: string | null,
): Promise<void> {
  try {
    await limiter.consume(clientContext(c).ip ?? 'unknown')
  } catch (error) {
    if (error instanceof TesseraError && error.code === 'rate_limited') {
      c.get('tessera').federationMetrics.count(provider, 'rate_limited')
    }
    throw error
  }
}

/**
 * Sets a flow's browser-binding cookie (`beginFlow`), for authorize and for the pages that start
 * flows themselves.
 */
export function setBrowserBindingCookie(
  c: Context<AppEnv>,
  browserCookie: { name: string; value: string },
): void {
  setCookie(c, browserCookie.name, browserCookie.value, {
    httpOnly: true,
    secure: c.get('tessera').config.issuer.startsWith('https://'),
    // Lax: the callback is a top-level GET navigation from the provider's site.
    sameSite: 'Lax',
    path: BROWSER_COOKIE_PATH,
    maxAge: STATE_TTL_SECONDS,
  })
}

/** `/v1/user/...` federated login (README, "Federated login"). Disabled providers are 404. */
export const federationRoutes = new Hono<AppEnv>()
  .get('/authenticate/:provider/authorize', async (c) => {
    const t = c.get('tessera')
    await limitPerIp(c, t.limits.oauthAuthorizePerIp, c.req.param('provider'))
    const provider = t.federation.get(c.req.param('provider'))
    if (provider === undefined) throw new TesseraError('not_found', 'No such provider is enabled')
    // With a bearer token this is a link flow for that user; a bad token is refused, never
    // silently turned into a login flow.
    let link: { userId: string; sessionId: string } | null = null
    if (c.req.header('authorization') !== undefined) {
      await requireUser(c, async () => {})
      const claims = c.get('claims')
      // Linking adds a lasting way into the account: a bearer token alone is not enough.
      await requireRecentAuthentication(t, claims.sid)
      link = { userId: claims.sub, sessionId: claims.sid }
    }
    const redirectUri = c.req.query('redirect_uri')
    if (redirectUri === undefined || redirectUri === '') {
      throw new TesseraError('validation_failed', 'redirect_uri is required', {
        errors: [{ field: 'redirect_uri', message: 'is required' }],
      })
    }
    if (hasControlCharacters(redirectUri)) {
      throw new TesseraError(
        'validation_failed',
        'redirect_uri: must not contain control characters',
        {
          errors: [{ field: 'redirect_uri', message: 'must not contain control characters' }],
        },
      )
    }
    const { url, browserCookie } = await beginFlow(t, {
      provider,
      redirectUri,
      link,
      codeChallenge: c.req.query('code_challenge'),
      codeChallengeMethod: c.req.query('code_challenge_method'),
      clientState: c.req.query('state'),
    })
    setBrowserBindingCookie(c, browserCookie)
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
    const callbackParameters = new URL(c.req.url).searchParams
    const cookieName = browserCookieName(callbackParameters.get('state') ?? '')
    const target = await completeFlow(t, {
      provider,
      callbackParameters,
      browserSecret: getCookie(c, cookieName),
      client: clientContext(c),
    })
    // The flow is over (its state is spent): its binding has no further use.
    deleteCookie(c, cookieName, {
      path: BROWSER_COOKIE_PATH,
      secure: t.config.issuer.startsWith('https://'),
      httpOnly: true,
      sameSite: 'Lax',
    })
    return c.redirect(target, 302)
  })

  .post('/auth/oauth/exchange', async (c) => {
    const t = c.get('tessera')
    await limitPerIp(c, t.limits.oauthExchangePerIp, null)
    const body = await readJson(c, ExchangeBody)
    return c.json(await exchangeLoginCode(t, body.code, body.code_verifier, clientContext(c)))
  })

  .delete('/identities/:provider', requireUser, async (c) => {
    const t = c.get('tessera')
    const claims = c.get('claims')
    const provider = c.req.param('provider')
    // Only a provider name can name a linked identity; anything else is 404 without a query.
    if (!(OAUTH_PROVIDERS as readonly string[]).includes(provider))
      throw new TesseraError('not_found', 'No such provider')
    await unlinkIdentity(t, claims, provider, clientContext(c))
    return c.body(null, 204)
  })
