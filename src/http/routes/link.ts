import { Hono } from 'hono'
import { TesseraError } from '../../errors.js'
import { redeemLinkTicket } from '../../federation/link-tickets.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { limitFlowPerIp, setBrowserBinding } from '../flow-browser.js'
import { linkDonePage, linkRefusedPage } from '../pages/link.js'
import { pageHeaders } from '../pages/page-kit.js'
import { renderPage } from '../pages/render.js'

const wantsJson = (accept: string | undefined) =>
  /\bapplication\/(problem\+)?json\b/i.test(accept ?? '')

/**
 * `/link/...`: where a client that holds only a bearer token sends the browser to link an
 * identity (README, "Linking from an API client"). A top-level navigation, so the flow's
 * browser-binding cookie is first-party whatever site the client lives on.
 */
export const linkRoutes = new Hono<AppEnv>()
  // The pages' CSP: their stylesheet (README, "Pages").
  .use(pageHeaders)
  // `/link/done` is this route too (no ticket is `done`: tickets carry their `tessera_lt_`
  // prefix). A fixed segment beside `:ticket` is a shape Hono's RegExpRouter refuses, and the app
  // would then route every request with its slower TrieRouter (docs/performance.md, "Routing").
  .get('/:ticket', async (c) => {
    if (c.req.param('ticket') === 'done') return renderPage(c, linkDonePage(c.req.query()))
    const t = c.get('tessera')
    try {
      // Counted like authorize, which this starts (RATE_LIMIT_OAUTH_PER_IP).
      await limitFlowPerIp(c, t.limits.oauthAuthorizePerIp, null)
      const redeemed = await redeemLinkTicket(
        t,
        c.req.param('ticket'),
        (name) => t.federation.get(name),
        clientContext(c),
      )
      if (!redeemed.started) return c.redirect(redeemed.url, 302)
      setBrowserBinding(c, redeemed.browserCookie)
      return c.redirect(redeemed.url.toString(), 302)
    } catch (error) {
      // A person followed this link: an HTML page, unless the client asked for JSON.
      if (!(error instanceof TesseraError) || wantsJson(c.req.header('accept'))) throw error
      if (error.retryAfter !== undefined) c.header('Retry-After', String(error.retryAfter))
      return renderPage(c, linkRefusedPage(error), error.status)
    }
  })
