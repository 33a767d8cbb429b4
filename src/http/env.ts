import type { BrowserSession } from '../browser/browser-sessions.js'
import type { Tessera } from '../tessera.js'
import type { AccessTokenClaims } from '../verify/token.js'

/** The one Hono environment type of the app. */
export interface AppEnv {
  Variables: {
    tessera: Tessera
    requestId: string
    /** Set by `requireUser` once the bearer token and its session check out. */
    claims: AccessTokenClaims
    /** Set by the pages' `withBrowserSession`: the browser's live session, if it has one. */
    browserSession: BrowserSession | undefined
  }
}
