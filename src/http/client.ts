import { BlockList, isIP } from 'node:net'
import { getConnInfo } from '@hono/node-server/conninfo'
import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { DEVICE_COOKIE, DEVICE_TTL_SECONDS } from '../accounts/devices.js'
import { normalizeIp } from '../config/index.js'
import type { ClientContext } from '../sessions/sessions.js'
import type { AppEnv } from './env.js'

/**
 * Who is calling, for rate limits, sessions and audit. `X-Forwarded-For` is read only when the
 * socket peer is one of the TRUST_PROXY addresses; then the client is the right-most entry that
 * is not itself a trusted proxy (README, "HTTP"). Entries left of it are whatever the client sent.
 */
export function clientContext(c: Context<AppEnv>): ClientContext {
  return { ip: clientIp(c), userAgent: c.req.header('user-agent') ?? null }
}

const trustCache = new WeakMap<readonly string[], BlockList>()

/** The TRUST_PROXY list as a BlockList, built once per configuration. */
function trustedProxies(entries: readonly string[]): BlockList {
  let list = trustCache.get(entries)
  if (list === undefined) {
    list = new BlockList()
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/')
      const type = isIP(address) === 4 ? 'ipv4' : 'ipv6'
      if (prefix === undefined) list.addAddress(address, type)
      else list.addSubnet(address, Number(prefix), type)
    }
    trustCache.set(entries, list)
  }
  return list
}

function isTrusted(list: BlockList, address: string): boolean {
  const family = isIP(address)
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

function peerAddress(c: Context<AppEnv>): string | null {
  try {
    const address = getConnInfo(c).remote.address
    return address === undefined ? null : normalizeIp(address)
  } catch {
    return null
  }
}

function clientIp(c: Context<AppEnv>): string | null {
  const peer = peerAddress(c)
  const entries = c.get('tessera').config.trustProxy
  if (peer === null || entries.length === 0) return peer
  const proxies = trustedProxies(entries)
  if (!isTrusted(proxies, peer)) return peer
  const forwarded = c.req.header('x-forwarded-for')
  if (forwarded === undefined) return peer
  // Walk from the nearest hop outwards; each trusted proxy vouches for the entry it appended.
  let client = peer
  const hops = forwarded.split(',')
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hopAddress(hops[i]!)
    // Not an address: the last trusted hop is the best answer there is.
    if (isIP(hop) === 0) return client
    client = hop
    if (!isTrusted(proxies, hop)) return hop
  }
  return client
}

/**
 * The address of one X-Forwarded-For entry. Some proxies append the port (`192.0.2.1:5678`,
 * `[2001:db8::1]:443`); without stripping it every client behind such a proxy would fall back to
 * the proxy's own address and share one rate-limit bucket.
 */
function hopAddress(entry: string): string {
  const hop = entry.trim()
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(hop)
  if (bracketed !== null) return normalizeIp(bracketed[1]!)
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(hop)
  return normalizeIp(v4WithPort === null ? hop : v4WithPort[1]!)
}

/** The device cookie the client presented, if any (README, "Passwords and login"). */
export function deviceToken(c: Context<AppEnv>): string | undefined {
  return getCookie(c, DEVICE_COOKIE)
}

/**
 * Hands a new device cookie to the client. Path `/` so it reaches both password-login routes
 * (`/v1/user/auth/login` and `/api/v1/auth/login`); Strict, since only Tessera's own login
 * requests need it; HttpOnly, since no script has any use for it.
 */
export function setDeviceCookie(c: Context<AppEnv>, token: string | undefined): void {
  if (token === undefined) return
  setCookie(c, DEVICE_COOKIE, token, {
    httpOnly: true,
    secure: c.get('tessera').config.issuer.startsWith('https://'),
    sameSite: 'Strict',
    path: '/',
    maxAge: DEVICE_TTL_SECONDS,
  })
}
