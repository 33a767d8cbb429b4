import { createHash, randomBytes } from 'node:crypto'
import * as v from 'valibot'
import type { Config } from '../config/index.js'
import { type BegunFlow, beginFlow, type FlowDeps, STATE_TTL_SECONDS } from '../federation/flow.js'
import type { FederationProvider } from '../federation/providers.js'
import {
  type SignInRequest,
  type SignInTarget,
  signInRequestOf,
  signInTarget,
} from './return-to.js'

/**
 * Federated sign-in from the sign-in page (README, "Pages"). The page is a client of Tessera's
 * own federated flow like any other: it makes a PKCE pair, starts the flow with the redirect URI
 * `${TESSERA_ISSUER}/login/complete`, and redeems the login code there with its verifier. What
 * it must remember meanwhile (the verifier and where the sign-in continues) sits in a short-lived
 * HttpOnly cookie of that path, named after the flow (its `state` towards the page), so flows in
 * several tabs keep their own.
 */
export const PENDING_COOKIE_PREFIX = 'tessera_signin_'
/** The page's own redirect URI path, and the pending cookie's path. */
export const COMPLETE_PATH = '/login/complete'
/** The pending cookie lives as long as the flow's state. */
export const PENDING_TTL_SECONDS = STATE_TTL_SECONDS

const random256 = () => randomBytes(32).toString('base64url')
const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('base64url')

/** The pending cookie of the flow whose `state` (towards the page) is `flowId`. */
export function pendingCookieName(flowId: string): string {
  return (
    PENDING_COOKIE_PREFIX + createHash('sha256').update(flowId, 'utf8').digest('hex').slice(0, 16)
  )
}

const Pending = v.object({
  verifier: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/)),
  request: v.object({
    returnTo: v.optional(v.string()),
    state: v.optional(v.string()),
    codeChallenge: v.optional(v.string()),
    codeChallengeMethod: v.optional(v.string()),
  }),
})

export interface BegunPagesSignIn extends BegunFlow {
  /** The pending cookie: its name, and its value (base64url JSON, HttpOnly). */
  pending: { name: string; value: string }
}

/** Starts a federated sign-in of the sign-in page that continues to `target` afterwards. */
export async function beginPagesSignIn(
  t: FlowDeps,
  provider: FederationProvider,
  target: SignInTarget,
): Promise<BegunPagesSignIn> {
  const verifier = random256()
  const flowId = random256()
  const begun = await beginFlow(t, {
    provider,
    redirectUri: t.config.issuer + COMPLETE_PATH,
    link: null,
    codeChallenge: sha256(verifier),
    codeChallengeMethod: 'S256',
    clientState: flowId,
  })
  const value = Buffer.from(
    JSON.stringify({ verifier, request: signInRequestOf(target) }),
    'utf8',
  ).toString('base64url')
  return { ...begun, pending: { name: pendingCookieName(flowId), value } }
}

export interface PendingSignIn {
  verifier: string
  target: SignInTarget
}

/**
 * The pending sign-in a cookie holds, or undefined when it is absent or not one. Its target is
 * checked again: a cookie is input like any other (one planted by a sibling site, say).
 */
export function readPendingSignIn(
  config: Pick<Config, 'oauth'>,
  value: string | undefined,
): PendingSignIn | undefined {
  if (value === undefined || value.length > 4096) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  const result = v.safeParse(Pending, parsed)
  if (!result.success) return undefined
  try {
    const request: SignInRequest = result.output.request
    return { verifier: result.output.verifier, target: signInTarget(config, request) }
  } catch {
    return undefined
  }
}
