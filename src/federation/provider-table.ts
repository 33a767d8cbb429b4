/**
 * The federated-login providers and everything that differs between them, declared once: the
 * configuration reads its defaults here, the provider registry its protocol and scopes, the flow
 * its account rules. Nothing else compares provider names (README, "Federated login").
 */

export const OAUTH_PROVIDERS = ['cilogon', 'github', 'google', 'gitlab', 'orcid'] as const
export type OAuthProviderName = (typeof OAUTH_PROVIDERS)[number]

interface OidcProtocol {
  /** Discovery, code flow with PKCE and an ID token checked against the provider's JWKS. */
  protocol: 'oidc'
  /**
   * Ask the userinfo endpoint for an email the ID token lacks. ORCID (asked for `openid` only)
   * releases no email there, so asking would only cost a request.
   */
  userinfoEmail: boolean
  /**
   * An address without `email_verified` counts as verified. CILogon relays institutional
   * addresses and sends no such claim; an explicit `false` is refused all the same.
   */
  emailVerifiedUnlessStated: boolean
}

interface GitHubProtocol {
  /** GitHub's OAuth 2 without OIDC: the account and verified email come from the REST API. */
  protocol: 'github-oauth'
  /** The REST API base URL when none is configured (it does not follow the web base URL). */
  defaultApiUrl: string
}

export type ProviderTraits = (OidcProtocol | GitHubProtocol) & {
  /** How the pages name it (README, "Pages"). */
  label: string
  /**
   * The public OIDC issuer (compared exactly with the discovery document's) or, for GitHub, the
   * web base URL, used when none is configured.
   */
  defaultIssuer: string
  /** What the provider is asked for at authorization. */
  scopes: string
  /** false: the identity can only be linked to an account that is logged in, never log in. */
  canLogIn: boolean
  /**
   * Signing up with it creates an `academic`, verified account, and linking it makes a `regular`
   * account `academic` and verified: the identity is an institutional one.
   */
  grantsAcademic: boolean
}

export type OidcProviderTraits = Extract<ProviderTraits, { protocol: 'oidc' }>
export type GitHubProviderTraits = Extract<ProviderTraits, { protocol: 'github-oauth' }>

export const PROVIDERS: Record<OAuthProviderName, ProviderTraits> = {
  // The address plus the `org.cilogon.userinfo` claims (home institution).
  cilogon: {
    label: 'CILogon',
    protocol: 'oidc',
    defaultIssuer: 'https://cilogon.org',
    scopes: 'openid email org.cilogon.userinfo',
    userinfoEmail: true,
    emailVerifiedUnlessStated: true,
    canLogIn: true,
    grantsAcademic: true,
  },
  // Only `user:email` (the profile is public), for the verified primary address.
  github: {
    label: 'GitHub',
    protocol: 'github-oauth',
    defaultIssuer: 'https://github.com',
    defaultApiUrl: 'https://api.github.com',
    scopes: 'user:email',
    canLogIn: true,
    grantsAcademic: false,
  },
  google: {
    label: 'Google',
    protocol: 'oidc',
    defaultIssuer: 'https://accounts.google.com',
    scopes: 'openid email profile',
    userinfoEmail: true,
    emailVerifiedUnlessStated: false,
    canLogIn: true,
    grantsAcademic: false,
  },
  // `read_user` is what releases the address to an OIDC client.
  gitlab: {
    label: 'GitLab',
    protocol: 'oidc',
    defaultIssuer: 'https://gitlab.com',
    scopes: 'openid read_user',
    userinfoEmail: true,
    emailVerifiedUnlessStated: false,
    canLogIn: true,
    grantsAcademic: false,
  },
  orcid: {
    label: 'ORCID',
    protocol: 'oidc',
    defaultIssuer: 'https://orcid.org',
    scopes: 'openid',
    userinfoEmail: false,
    emailVerifiedUnlessStated: false,
    canLogIn: false,
    grantsAcademic: false,
  },
}

/**
 * Whether an identity stored under `provider` is a way to log in. A name the table does not know
 * (a provider removed from Tessera) is not: counting it would let the last real way into an
 * account be unlinked.
 */
export function canLogInWith(provider: string): boolean {
  return isProviderName(provider) && PROVIDERS[provider].canLogIn
}

export function isProviderName(name: string): name is OAuthProviderName {
  return (OAUTH_PROVIDERS as readonly string[]).includes(name)
}
