import { Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import * as v from 'valibot'
import { requireRecentAuthentication } from '../../accounts/reauthenticate.js'
import { OAUTH_PROVIDERS } from '../../config/index.js'
import { TesseraError } from '../../errors.js'
import {
  beginFlow,
  browserCookieName,
  completeFlow,
  exchangeLoginCode,
  unlinkIdentity,
} from '../../federation/flow.js'
import { issueLinkTicket } from '../../federation/link-tickets.js'
import { formatPasetoTime } from '../../paseto/time.js'
import { hasControlCharacters } from '../../text.js'
import { requestedGrant } from '../../tokens/grant.js'
import { grantFields, noControlCharacters, readJson, readOptionalJson } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { clearBrowserBinding, limitFlowPerIp, setBrowserBinding } from '../flow-browser.js'
import { requireUser } from '../middleware/require-user.js'

const ExchangeBody = v.object({
  code: v.pipe(v.string('must be a string'), noControlCharacters, v.maxLength(200, 'is too long')),
  // Checked against the code's challenge in the domain: a malformed verifier is a wrong one.
  code_verifier: v.exactOptional(
    v.pipe(v.string('must be a string'), noControlCharacters, v.maxLength(200, 'is too long')),
  ),
  ...grantFields,
})

const LinkUrlBody = v.object({
  redirect_uri: v.exactOptional(
    v.pipe(v.string('must be a string'), noControlCharacters, v.maxLength(2048, 'is too long')),
  ),
})

/** `/v1/user/...` federated login (README, "Federated login"). Disabled providers are 404. */
export const federationRoutes = new Hono<AppEnv>()
  .get('/authenticate/:provider/authorize', async (c) => {
    const t = c.get('tessera')
    await limitFlowPerIp(c, t.limits.oauthAuthorizePerIp, c.req.param('provider'))
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
    setBrowserBinding(c, browserCookie)
    if (/\bapplication\/json\b/i.test(c.req.header('accept') ?? '')) {
      return c.json({ authorization_url: url.toString() })
    }
    return c.redirect(url.toString(), 302)
  })

  .get('/authenticate/:provider/callback', async (c) => {
    const t = c.get('tessera')
    await limitFlowPerIp(c, t.limits.oauthCallbackPerIp, c.req.param('provider'))
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
    clearBrowserBinding(c, cookieName)
    return c.redirect(target, 302)
  })

  .post('/auth/oauth/exchange', async (c) => {
    const t = c.get('tessera')
    await limitFlowPerIp(c, t.limits.oauthExchangePerIp, null)
    const body = await readJson(c, ExchangeBody)
    // Before the code is claimed: an unknown audience does not spend it.
    const grant = requestedGrant(t.config, body)
    return c.json(
      await exchangeLoginCode(t, body.code, body.code_verifier, clientContext(c), grant),
    )
  })

  // A single-use URL that starts a link flow in the user's browser, for clients that hold only a
  // bearer token (README, "Linking from an API client"); GET /link/{ticket} redeems it.
  .post('/identities/:provider/link-url', requireUser, async (c) => {
    const t = c.get('tessera')
    const provider = t.federation.get(c.req.param('provider'))
    if (provider === undefined) throw new TesseraError('not_found', 'No such provider is enabled')
    const body = await readOptionalJson(c, LinkUrlBody)
    const issued = await issueLinkTicket(t, c.get('claims'), provider, body.redirect_uri)
    return c.json({ url: issued.url, expires_at: formatPasetoTime(issued.expiresAt) }, 201)
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
