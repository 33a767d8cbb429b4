import { getConnInfo } from '@hono/node-server/conninfo'
import type { Context } from 'hono'
import type { ClientContext } from '../sessions/sessions.js'
import type { AppEnv } from './env.js'

/**
 * Who is calling, for rate limits, sessions and audit. `X-Forwarded-For` is believed only when
 * TRUST_PROXY says one proxy stands in front; then its last entry is the address that proxy saw
 * (earlier entries are whatever the client sent).
 */
export function clientContext(c: Context<AppEnv>): ClientContext {
  return { ip: clientIp(c), userAgent: c.req.header('user-agent') ?? null }
}

function clientIp(c: Context<AppEnv>): string | null {
  if (c.get('tessera').config.trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')
    const last = forwarded?.split(',').at(-1)?.trim()
    if (last) return last.slice(0, 64)
  }
  try {
    return getConnInfo(c).remote.address ?? null
  } catch {
    return null
  }
}
