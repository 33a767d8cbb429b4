import type { Context } from 'hono'
import { deleteCookie, setCookie } from 'hono/cookie'
import { TesseraError } from '../errors.js'
import { STATE_TTL_SECONDS } from '../federation/flow.js'
import type { Limiter } from '../rate-limit/limits.js'
import { clientContext } from './client.js'
import type { AppEnv } from './env.js'

/**
 * What the routes that start and finish federated flows share in the browser (README, "Federated
 * login"): the per-flow browser-binding cookie, and the per-address limit.
 */

/** Where the browser-binding cookies live: only the callback ever needs them back. */
const BROWSER_COOKIE_PATH = '/v1/user/authenticate'

const cookieOptions = (c: Context<AppEnv>) => ({
  httpOnly: true,
  secure: c.get('tessera').config.issuer.startsWith('https://'),
  // Lax: the callback is a top-level GET navigation from the provider's site.
  sameSite: 'Lax' as const,
  path: BROWSER_COOKIE_PATH,
})

/** Sets a started flow's fresh browser binding, for as long as its state lives. */
export function setBrowserBinding(
  c: Context<AppEnv>,
  cookie: { name: string; value: string },
): void {
  setCookie(c, cookie.name, cookie.value, { ...cookieOptions(c), maxAge: STATE_TTL_SECONDS })
}

/** Clears a finished flow's binding (its state is spent: it has no further use). */
export function clearBrowserBinding(c: Context<AppEnv>, name: string): void {
  deleteCookie(c, name, cookieOptions(c))
}

/**
 * Counts the request against its per-address limit (RATE_LIMIT_OAUTH_PER_IP) before anything
 * else: a refused request stores no state, calls no provider and spends no state or ticket, so a
 * request refused here can be retried with the same URL once the window allows.
 */
export async function limitFlowPerIp(
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
