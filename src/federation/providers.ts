import type * as oauth from 'oauth4webapi'
import type { OAuthClientConfig, OAuthConfig } from '../config/index.js'
import { assertsMfa } from './provider-mfa.js'
import {
  type GitHubProviderTraits,
  OAUTH_PROVIDERS,
  type OAuthProviderName,
  type OidcProviderTraits,
  PROVIDERS,
} from './provider-table.js'

/** What Tessera keeps of an upstream account: keyed by (provider, subject), never by email. */
export interface ProviderIdentity {
  subject: string
  /** The provider's email for the account, only when the provider says it is verified. */
  email: string | null
  name: string | null
  /**
   * The ID token asserted multi-factor authentication (`assertsMfa`: RFC 8176 `amr`, or an MFA
   * `acr`); always false for a provider without ID tokens (GitHub). Not stored: it is this
   * login's, and counts only when MFA_TRUST_PROVIDER_AMR names the provider.
   */
  assertsMfa: boolean
}

export interface AuthorizationRequest {
  state: string
  codeVerifier: string
  /** OIDC only. */
  nonce: string | null
  /** Tessera's own callback URL for this provider. */
  callbackUrl: string
}

export interface CallbackInput extends AuthorizationRequest {
  /** The query of the request that reached the callback. */
  callbackParameters: URLSearchParams
}

/**
 * The authorization URL both kinds of provider start from: the client, Tessera's callback, the
 * scopes, the state and the S256 PKCE challenge of this login's verifier.
 */
async function pkceAuthorizationUrl(
  oauth: OAuthLib,
  endpoint: string,
  client: Pick<OAuthClientConfig, 'clientId'>,
  scopes: string,
  request: AuthorizationRequest,
): Promise<URL> {
  const url = new URL(endpoint)
  url.searchParams.set('client_id', client.clientId)
  url.searchParams.set('redirect_uri', request.callbackUrl)
  url.searchParams.set('scope', scopes)
  url.searchParams.set('state', request.state)
  url.searchParams.set(
    'code_challenge',
    await oauth.calculatePKCECodeChallenge(request.codeVerifier),
  )
  url.searchParams.set('code_challenge_method', 'S256')
  return url
}

/** The upstream said no (`access_denied` and the like) or answered something unusable. */
export class ProviderError extends Error {
  constructor(
    /** `access_denied` when the user or provider refused, `provider_error` for anything else. */
    readonly code: 'access_denied' | 'provider_error',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'ProviderError'
  }
}

export interface FederationProvider {
  name: OAuthProviderName
  protocol: 'oidc' | 'oauth2'
  /** ORCID: may only be linked to an account that is logged in, never used to log in. */
  linkOnly: boolean
  authorizationUrl(request: AuthorizationRequest): Promise<URL>
  /**
   * The origins the browser is sent to at authorization, as far as known without a request: the
   * issuer's (or GitHub's base URL's) and, once discovery has run, the authorization endpoint's.
   * Pages whose forms lead there name them in their CSP `form-action` (README, "Pages").
   */
  authorizationOrigins(): string[]
  /**
   * Checks the authorization response (state, `iss` when the provider sends it), redeems the
   * code with the PKCE verifier and, for OIDC, validates the ID token (`iss`, `aud`, `exp`,
   * `nonce`, signature and `alg` against the provider's JWKS). Throws `ProviderError`.
   */
  complete(input: CallbackInput): Promise<ProviderIdentity>
}

export interface ProviderRegistry {
  /** The enabled provider of that name; undefined for unknown or unconfigured ones. */
  get(name: string): FederationProvider | undefined
  enabled(): OAuthProviderName[]
}

const UPSTREAM_TIMEOUT_MS = 10_000

/** oauth4webapi, loaded only by a deployment that enables a provider. */
type OAuthLib = typeof import('oauth4webapi')

/** Builds the providers enabled by the configuration. Discovery is lazy and cached per process. */
export async function createProviderRegistry(config: OAuthConfig): Promise<ProviderRegistry> {
  const providers = new Map<string, FederationProvider>()
  const enabled = OAUTH_PROVIDERS.filter((name) => config.providers[name] !== undefined)
  const lib = enabled.length === 0 ? undefined : await import('oauth4webapi')
  for (const name of enabled) {
    const client = config.providers[name]!
    const traits = PROVIDERS[name]
    providers.set(
      name,
      traits.protocol === 'github-oauth'
        ? githubProvider(lib!, name, traits, client, config.allowInsecureIssuers)
        : oidcProvider(lib!, name, traits, client, config.allowInsecureIssuers),
    )
  }
  return {
    get: (name) => providers.get(name),
    enabled: () => [...providers.keys()] as OAuthProviderName[],
  }
}

function httpOptions(oauth: OAuthLib, allowInsecure: boolean) {
  return {
    [oauth.allowInsecureRequests]: allowInsecure,
    signal: () => AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
  }
}

function oidcProvider(
  oauth: OAuthLib,
  name: OAuthProviderName,
  traits: OidcProviderTraits,
  client: OAuthClientConfig,
  allowInsecure: boolean,
): FederationProvider {
  const issuer = new URL(client.issuer)
  const oauthClient: oauth.Client = { client_id: client.clientId }
  const clientAuth = oauth.ClientSecretPost(client.clientSecret)
  // One JWKS cache per provider and process: keys are refetched by oauth4webapi when stale or
  // when an ID token names an unknown key.
  const jwks: oauth.JWKSCacheInput = {}
  let discovered: Promise<oauth.AuthorizationServer> | undefined
  /** The discovered authorization endpoint's origin, once known. */
  let endpointOrigin: string | undefined

  // Discovery is cached for the life of the process; a failure is not cached, so the next
  // request tries again.
  const server = (): Promise<oauth.AuthorizationServer> => {
    discovered ??= (async () => {
      const response = await oauth.discoveryRequest(issuer, {
        ...httpOptions(oauth, allowInsecure),
        algorithm: 'oidc',
      })
      return oauth.processDiscoveryResponse(issuer, response)
    })().catch((error: unknown) => {
      discovered = undefined
      throw new ProviderError('provider_error', `${name}: discovery failed`, { cause: error })
    })
    return discovered
  }

  return {
    name,
    protocol: 'oidc',
    linkOnly: !traits.canLogIn,
    authorizationOrigins: () =>
      endpointOrigin === undefined || endpointOrigin === issuer.origin
        ? [issuer.origin]
        : [issuer.origin, endpointOrigin],
    async authorizationUrl(request) {
      const as = await server()
      if (as.authorization_endpoint === undefined) {
        throw new ProviderError('provider_error', `${name}: no authorization_endpoint`)
      }
      const url = await pkceAuthorizationUrl(
        oauth,
        as.authorization_endpoint,
        client,
        traits.scopes,
        request,
      )
      endpointOrigin = url.origin
      url.searchParams.set('response_type', 'code')
      if (request.nonce !== null) url.searchParams.set('nonce', request.nonce)
      return url
    },
    async complete(input) {
      const as = await server()
      const params = validateResponse(oauth, name, as, oauthClient, input)
      try {
        const options = httpOptions(oauth, allowInsecure)
        const response = await oauth.authorizationCodeGrantRequest(
          as,
          oauthClient,
          clientAuth,
          params,
          input.callbackUrl,
          input.codeVerifier,
          options,
        )
        const result = await oauth.processAuthorizationCodeResponse(as, oauthClient, response, {
          expectedNonce: input.nonce ?? oauth.expectNoNonce,
          requireIdToken: true,
        })
        // processAuthorizationCodeResponse checks the claims; the signature is checked here
        // (docs/security.md: ID token signature and alg verified, not only trusted over TLS).
        await oauth.validateApplicationLevelSignature(as, response, {
          ...options,
          [oauth.jwksCache]: jwks,
        })
        const claims = oauth.getValidatedIdTokenClaims(result)
        if (claims === undefined) throw new ProviderError('provider_error', `${name}: no ID token`)
        let email = verifiedEmail(traits, claims)
        let displayName = typeof claims.name === 'string' ? claims.name : null
        if (email === null && traits.userinfoEmail && as.userinfo_endpoint !== undefined) {
          const info = await oauth.processUserInfoResponse(
            as,
            oauthClient,
            claims.sub,
            await oauth.userInfoRequest(as, oauthClient, result.access_token, options),
          )
          email = verifiedEmail(traits, info)
          displayName ??= typeof info.name === 'string' ? info.name : null
        }
        return { subject: claims.sub, email, name: displayName, assertsMfa: assertsMfa(claims) }
      } catch (error) {
        throw asProviderError(oauth, name, error)
      }
    },
  }
}

/**
 * Only an email the provider vouches for is used (it names the new account, and a taken one
 * answers `account_exists`); see `emailVerifiedUnlessStated` for the provider that sends no
 * `email_verified`.
 */
function verifiedEmail(traits: OidcProviderTraits, claims: Record<string, unknown>): string | null {
  if (typeof claims.email !== 'string' || claims.email === '') return null
  if (claims.email_verified === true) return claims.email
  if (traits.emailVerifiedUnlessStated && claims.email_verified === undefined) return claims.email
  return null
}

function validateResponse(
  oauth: OAuthLib,
  name: OAuthProviderName,
  as: oauth.AuthorizationServer,
  client: oauth.Client,
  input: CallbackInput,
): URLSearchParams {
  try {
    return oauth.validateAuthResponse(as, client, input.callbackParameters, input.state)
  } catch (error) {
    throw asProviderError(oauth, name, error)
  }
}

function asProviderError(oauth: OAuthLib, name: OAuthProviderName, error: unknown): ProviderError {
  if (error instanceof ProviderError) return error
  if (error instanceof oauth.AuthorizationResponseError && error.error === 'access_denied') {
    return new ProviderError('access_denied', `${name}: access denied`, { cause: error })
  }
  return new ProviderError('provider_error', `${name}: the provider's answer was refused`, {
    cause: error,
  })
}

/**
 * GitHub is OAuth 2 without OIDC: the code is redeemed with oauth4webapi against fixed endpoints
 * (PKCE S256 and state still apply), then the account and its verified primary email come from
 * the REST API. The subject is the numeric account id, which survives renames.
 */
function githubProvider(
  oauth: OAuthLib,
  name: OAuthProviderName,
  traits: GitHubProviderTraits,
  client: OAuthClientConfig,
  allowInsecure: boolean,
): FederationProvider {
  const apiUrl = client.apiUrl ?? traits.defaultApiUrl
  const as: oauth.AuthorizationServer = {
    issuer: client.issuer,
    authorization_endpoint: `${client.issuer}/login/oauth/authorize`,
    token_endpoint: `${client.issuer}/login/oauth/access_token`,
  }
  const oauthClient: oauth.Client = { client_id: client.clientId }
  const clientAuth = oauth.ClientSecretPost(client.clientSecret)

  const api = async (path: string, accessToken: string): Promise<unknown> => {
    const response = await fetch(`${apiUrl}${path}`, {
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${accessToken}`,
        'user-agent': 'tessera',
        'x-github-api-version': '2022-11-28',
      },
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    })
    if (!response.ok)
      throw new ProviderError('provider_error', `${name}: ${path} answered ${response.status}`)
    return response.json()
  }

  return {
    name,
    protocol: 'oauth2',
    linkOnly: !traits.canLogIn,
    authorizationOrigins: () => [new URL(as.authorization_endpoint!).origin],
    async authorizationUrl(request) {
      const url = await pkceAuthorizationUrl(
        oauth,
        as.authorization_endpoint!,
        client,
        traits.scopes,
        request,
      )
      url.searchParams.set('allow_signup', 'false')
      return url
    },
    async complete(input) {
      const params = validateResponse(oauth, name, as, oauthClient, input)
      try {
        const response = await oauth.authorizationCodeGrantRequest(
          as,
          oauthClient,
          clientAuth,
          params,
          input.callbackUrl,
          input.codeVerifier,
          httpOptions(oauth, allowInsecure),
        )
        const result = await oauth.processAuthorizationCodeResponse(as, oauthClient, response)
        const user = (await api('/user', result.access_token)) as { id?: unknown; name?: unknown }
        if (typeof user.id !== 'number' && typeof user.id !== 'string') {
          throw new ProviderError('provider_error', `${name}: /user has no id`)
        }
        const emails = (await api('/user/emails', result.access_token)) as unknown
        const primary = Array.isArray(emails)
          ? (emails as { email?: unknown; primary?: unknown; verified?: unknown }[]).find(
              (e) => e.primary === true && e.verified === true && typeof e.email === 'string',
            )
          : undefined
        return {
          subject: String(user.id),
          email: (primary?.email as string | undefined) ?? null,
          name: typeof user.name === 'string' ? user.name : null,
          // No ID token, hence no `amr`/`acr`: GitHub never asserts MFA (README, "Second factors").
          assertsMfa: false,
        }
      } catch (error) {
        throw asProviderError(oauth, name, error)
      }
    },
  }
}
