import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import {
  clientParameters,
  clientRedirectUriAllowed,
  createLoginCode,
  type LoginCodeOrigin,
} from '../federation/flow.js'
import { hasControlCharacters } from '../text.js'

/** Where the sign-in page sends the browser when nothing else is asked for. */
export const DEFAULT_RETURN_TO = '/account'
/** Bounded so the value fits the pending-flow cookie and a form field comfortably. */
const MAX_RETURN_TO = 2048

/**
 * Where a sign-in continues (README, "Pages", return_to rules):
 * - `page`: a path of Tessera's own, reached as `${TESSERA_ISSUER}${path}`;
 * - `client`: an application's redirect URI from OAUTH_REDIRECT_URIS, which gets a one-time login
 *   code (`?code=...&state=...`) to exchange with its PKCE verifier, as after a federated login.
 */
export type SignInTarget =
  | { kind: 'page'; path: string }
  | {
      kind: 'client'
      redirectUri: string
      /** The application's opaque `state`, handed back with the code. */
      state: string | null
      /** Its PKCE S256 challenge; null only under OAUTH_CLIENT_PKCE=optional. */
      codeChallenge: string | null
    }

/** The query (or hidden form fields) of `/login?return_to=R&state=S&code_challenge=C&...`. */
export interface SignInRequest {
  returnTo?: string | undefined
  state?: string | undefined
  codeChallenge?: string | undefined
  codeChallengeMethod?: string | undefined
}

/**
 * A path of Tessera's own: one leading `/` and not `//` (a network-path reference, another host),
 * no backslash (browsers read `/\host` as `//host`), no control characters (browsers drop tabs
 * and newlines, so `/\t/host` would become `//host`), hence no scheme either.
 */
function isOwnPath(value: string): boolean {
  return (
    value.startsWith('/') &&
    !value.startsWith('//') &&
    !value.includes('\\') &&
    !hasControlCharacters(value)
  )
}

const refused = () =>
  new TesseraError(
    'invalid_return_to',
    'return_to must be one of the configured redirect URIs or a path of this server',
  )

/**
 * Checks where a sign-in may continue. `return_to` must be an application's redirect URI
 * (`clientRedirectUriAllowed`: exactly an OAUTH_REDIRECT_URIS entry, or a loopback one on any port)
 * (then `state` and the PKCE challenge are the application's, checked as at federated authorize,
 * OAUTH_CLIENT_PKCE included) or be a path of Tessera's own (`isOwnPath`; `state` and a challenge
 * mean nothing there and are ignored). Anything else is refused with `invalid_return_to`, and
 * never redirected to.
 */
export function signInTarget(config: Pick<Config, 'oauth'>, request: SignInRequest): SignInTarget {
  const returnTo = request.returnTo
  if (returnTo === undefined || returnTo === '') return { kind: 'page', path: DEFAULT_RETURN_TO }
  if (returnTo.length > MAX_RETURN_TO) throw refused()
  if (clientRedirectUriAllowed(config, returnTo)) {
    const client = clientParameters(
      config,
      {
        codeChallenge: request.codeChallenge,
        codeChallengeMethod: request.codeChallengeMethod,
        clientState: request.state,
      },
      false,
    )
    return {
      kind: 'client',
      redirectUri: returnTo,
      state: client.state,
      codeChallenge: client.challenge,
    }
  }
  if (isOwnPath(returnTo)) return { kind: 'page', path: returnTo }
  throw refused()
}

/** The request that names `target` again: the hidden fields of a form that continues it. */
export function signInRequestOf(target: SignInTarget): SignInRequest {
  if (target.kind === 'page') {
    return target.path === DEFAULT_RETURN_TO ? {} : { returnTo: target.path }
  }
  return {
    returnTo: target.redirectUri,
    ...(target.state === null ? {} : { state: target.state }),
    ...(target.codeChallenge === null
      ? {}
      : { codeChallenge: target.codeChallenge, codeChallengeMethod: 'S256' }),
  }
}

export interface ContinueDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'issuer'>
}

/**
 * Where the browser goes once `userId` is signed in to the pages: the page, on Tessera's origin;
 * or the application's redirect URI with a fresh one-time login code (`origin` says how it was
 * earned: `LoginCodeOrigin`) and the application's `state`. The code carries `amr`, the browser
 * session's methods, so the application's session is as strong as the sign-in was (README,
 * "Second factors").
 */
export async function continueSignIn(
  t: ContinueDeps,
  userId: string,
  origin: Extract<LoginCodeOrigin, 'password' | 'session'>,
  target: SignInTarget,
  amr: readonly string[] | undefined,
): Promise<string> {
  if (target.kind === 'page') {
    const url = new URL(target.path, t.config.issuer)
    // isOwnPath already guarantees it; a redirect off the origin must be impossible, not unlikely.
    if (url.origin !== new URL(t.config.issuer).origin) throw refused()
    return url.toString()
  }
  const code = await createLoginCode(t, userId, origin, target.codeChallenge, amr)
  const url = new URL(target.redirectUri)
  url.searchParams.set('code', code)
  if (target.state !== null) url.searchParams.set('state', target.state)
  return url.toString()
}
