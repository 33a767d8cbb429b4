import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { Kysely } from 'kysely'
import { getUser } from '../accounts/accounts.js'
import { normalizeEmail } from '../accounts/email.js'
import {
  type RecentAuthenticationDeps,
  requireRecentAuthentication,
} from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import type { Config, OAuthProviderName } from '../config/index.js'
import { isUniqueViolation } from '../db/errors.js'
import type { Database, User } from '../db/schema.js'
import { TesseraError } from '../errors.js'
import type { Logger } from '../logger.js'
import { secondFactorChallenge } from '../mfa/login-step.js'
import { parseStoredAmr, storedAmr } from '../sessions/amr.js'
import { type OpenSessionDeps, openSession } from '../sessions/open-session.js'
import type { ClientContext } from '../sessions/sessions.js'
import { hasControlCharacters, stripControlCharacters } from '../text.js'
import type { AccessGrant } from '../tokens/grant.js'
import type { TokenPair } from '../tokens/token-pair.js'
import { CLI_LOOPBACK_REDIRECT_URI, matchesLoopbackEntry } from './loopback.js'
import type { FederationMetrics } from './metrics.js'
import type { CallbackErrorCode } from './outcomes.js'
import { canLogInWith, PROVIDERS } from './provider-table.js'
import { type FederationProvider, ProviderError, type ProviderIdentity } from './providers.js'

/** What a federated flow needs: the sessions it opens, its metric and its configuration. */
export type FlowDeps = OpenSessionDeps &
  RecentAuthenticationDeps & {
    config: Pick<Config, 'issuer' | 'oauth' | 'browserSessionIdleTtl' | 'mfaTrustProviderAmr'>
    federationMetrics: FederationMetrics
    logger: Pick<Logger, 'warn'>
  }

/** How long a started flow may take at the provider (the user may have to log in there). */
export const STATE_TTL_SECONDS = 600
/** openapi.yaml: the one-time login code is single use and lives 60 s. */
export const LOGIN_CODE_TTL_SECONDS = 60

const LOGIN_CODE_PREFIX = 'tessera_lc_'
const LOGIN_CODE_PATTERN = /^tessera_lc_[A-Za-z0-9_-]{43}$/
const STATE_PATTERN = /^[A-Za-z0-9_-]{43}$/
/** An S256 challenge is a base64url SHA-256: always 43 characters. */
const CODE_CHALLENGE_PATTERN = /^[A-Za-z0-9_-]{43}$/
/** A PKCE verifier: 43 to 128 characters of the unreserved set (README, "Federated login"). */
const CODE_VERIFIER_PATTERN = /^[A-Za-z0-9._~-]{43,128}$/
/** The client's opaque `state`: printable ASCII, bounded so the row and the redirect stay small. */
const CLIENT_STATE_PATTERN = /^[\x20-\x7e]{1,512}$/
/** Per-flow browser-binding cookies: this prefix and 16 hex characters of the state's hash. */
export const BROWSER_COOKIE_PREFIX = 'tessera_oauth_'

const random256 = () => randomBytes(32).toString('base64url')
const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('base64url')

/**
 * The name of a flow's browser-binding cookie, derived from its state: each flow has its own
 * cookie, so parallel flows in several tabs do not overwrite each other's binding, and a value
 * already in the browser is never adopted (README, "Federated login").
 */
export function browserCookieName(state: string): string {
  return (
    BROWSER_COOKIE_PREFIX + createHash('sha256').update(state, 'utf8').digest('hex').slice(0, 16)
  )
}

export function callbackUrl(t: { config: Pick<Config, 'issuer'> }, provider: string): string {
  return `${t.config.issuer}/v1/user/authenticate/${provider}/callback`
}

/**
 * Where a flow may send the browser back to: a client redirect URI on the OAUTH_REDIRECT_URIS
 * allow-list (exact match), a loopback entry of that list or the CLI's built-in one on any port
 * (RFC 8252 §7.3, loopback.ts), or a page of Tessera's own origin (its sign-in and account pages
 * start flows that come back to themselves).
 */
export function redirectUriAllowed(
  config: Pick<Config, 'issuer' | 'oauth'>,
  redirectUri: string,
): boolean {
  if (clientRedirectUriAllowed(config, redirectUri)) return true
  return URL.canParse(redirectUri) && new URL(redirectUri).origin === new URL(config.issuer).origin
}

/**
 * An application's redirect URI: exactly an OAUTH_REDIRECT_URIS entry, or a loopback one on any
 * port (RFC 8252 §7.3; the CLI's is built in). The sign-in page's `return_to` takes these too.
 */
export function clientRedirectUriAllowed(
  config: Pick<Config, 'oauth'>,
  redirectUri: string,
): boolean {
  if (config.oauth.redirectUris.includes(redirectUri)) return true
  const loopback = [CLI_LOOPBACK_REDIRECT_URI, ...config.oauth.redirectUris]
  return loopback.some((entry) => matchesLoopbackEntry(entry, redirectUri))
}

export interface BeginInput {
  provider: FederationProvider
  redirectUri: string
  /**
   * Set for a link flow: the logged-in user and the session of the bearer token (checked, and
   * recently authenticated, by the caller); the session must still be live at the callback.
   */
  link: { userId: string; sessionId: string } | null
  /** The client's PKCE `code_challenge` and `code_challenge_method` query parameters. */
  codeChallenge: string | undefined
  codeChallengeMethod: string | undefined
  /** The client's opaque `state` query parameter, handed back on the redirect to the client. */
  clientState: string | undefined
}

export interface BegunFlow {
  url: URL
  /** The browser-binding cookie the caller sets with the answer: fresh for every flow. */
  browserCookie: { name: string; value: string }
}

const invalidParameter = (field: string, message: string) =>
  new TesseraError('validation_failed', `${field} ${message}`, { errors: [{ field, message }] })

/**
 * The client's side of the flow: its PKCE challenge (S256 only) binds the one-time login code to
 * the client that started the flow, so a code obtained by someone else cannot be fed to it (login
 * CSRF); OAUTH_CLIENT_PKCE=optional lets clients that cannot do PKCE leave it out. A link flow
 * hands out no code, so it needs no challenge.
 */
export function clientParameters(
  config: Pick<Config, 'oauth'>,
  input: Pick<BeginInput, 'codeChallenge' | 'codeChallengeMethod' | 'clientState'>,
  link: boolean,
): { challenge: string | null; state: string | null } {
  if (input.clientState !== undefined && !CLIENT_STATE_PATTERN.test(input.clientState)) {
    throw invalidParameter('state', 'must be 1 to 512 printable ASCII characters')
  }
  const state = input.clientState ?? null
  if (input.codeChallenge === undefined) {
    if (input.codeChallengeMethod !== undefined)
      throw invalidParameter('code_challenge', 'is required with code_challenge_method')
    if (!link && config.oauth.clientPkce === 'required') {
      throw invalidParameter('code_challenge', 'is required (PKCE S256)')
    }
    return { challenge: null, state }
  }
  if (input.codeChallengeMethod !== 'S256')
    throw invalidParameter('code_challenge_method', 'must be S256')
  if (!CODE_CHALLENGE_PATTERN.test(input.codeChallenge)) {
    throw invalidParameter(
      'code_challenge',
      'must be the base64url SHA-256 of the code verifier (43 characters)',
    )
  }
  return { challenge: input.codeChallenge, state }
}

/**
 * Starts a login or link flow: a fresh PKCE verifier, state and (OIDC) nonce, stored as one
 * single-use row bound to the provider, a fresh browser-binding secret, the allow-listed redirect
 * URI and the client's PKCE challenge and state.
 */
export async function beginFlow(t: FlowDeps, input: BeginInput): Promise<BegunFlow> {
  if (!redirectUriAllowed(t.config, input.redirectUri)) {
    throw new TesseraError('validation_failed', 'redirect_uri is not on the allow-list', {
      errors: [{ field: 'redirect_uri', message: 'must exactly match a configured redirect URI' }],
    })
  }
  if (input.provider.linkOnly && input.link === null) {
    throw new TesseraError(
      'unauthorized',
      `${input.provider.name} can only be linked to an account you are logged in to`,
    )
  }
  const client = clientParameters(t.config, input, input.link !== null)
  const state = random256()
  const browserSecret = random256()
  const codeVerifier = random256()
  const nonce = input.provider.protocol === 'oidc' ? random256() : null
  const url = await input.provider
    .authorizationUrl({
      state,
      codeVerifier,
      nonce,
      callbackUrl: callbackUrl(t, input.provider.name),
    })
    .catch((error: unknown) => {
      t.federationMetrics.count(input.provider.name, 'service_unavailable')
      throw new TesseraError('service_unavailable', `${input.provider.name} cannot be reached`, {
        cause: error,
      })
    })
  const now = t.clock()
  await t.db.deleteFrom('oauth_states').where('expires_at', '<', now).execute()
  await t.db
    .insertInto('oauth_states')
    .values({
      state_hash: sha256(state),
      provider: input.provider.name,
      code_verifier: codeVerifier,
      nonce,
      redirect_uri: input.redirectUri,
      link_user_id: input.link?.userId ?? null,
      link_session_id: input.link?.sessionId ?? null,
      browser_hash: sha256(browserSecret),
      client_code_challenge: client.challenge,
      client_state: client.state,
      created_at: now,
      expires_at: now + STATE_TTL_SECONDS * 1000,
      used_at: null,
    })
    .execute()
  return { url, browserCookie: { name: browserCookieName(state), value: browserSecret } }
}

export interface CompleteInput {
  provider: FederationProvider
  callbackParameters: URLSearchParams
  /**
   * The flow's browser-binding cookie (named by `browserCookieName(state)`), if the browser sent
   * it.
   */
  browserSecret: string | undefined
  client: ClientContext
}

/**
 * Finishes a flow and answers where to send the browser: the client's redirect URI with
 * `?code=` (login), `?linked=` (link) or `?error=`. A state that is unknown, spent, expired,
 * for another provider (mix-up) or from another browser throws `invalid_oauth_state` instead:
 * then there is no trustworthy redirect URI to go back to.
 */
export async function completeFlow(t: FlowDeps, input: CompleteInput): Promise<string> {
  const { provider } = input
  const state = input.callbackParameters.get('state') ?? ''
  const now = t.clock()
  // One atomic claim: of N callbacks with the same state, on any replica, one proceeds.
  const row = STATE_PATTERN.test(state)
    ? await t.db
        .updateTable('oauth_states')
        .set({ used_at: now })
        .where('state_hash', '=', sha256(state))
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .returningAll()
        .executeTakeFirst()
    : undefined
  const refuse = async (reason: string) => {
    t.federationMetrics.count(provider.name, 'invalid_oauth_state')
    await recordAudit(t.db, t.clock, {
      event: 'federated_login_failed',
      userId: row?.link_user_id ?? null,
      ip: input.client.ip,
      detail: { provider: provider.name, reason },
    })
    return new TesseraError(
      'invalid_oauth_state',
      'This sign-in attempt is unknown, expired or already used; start again',
    )
  }
  if (row === undefined) throw await refuse('unknown_state')
  // Mix-up defence (RFC 9700 §4.4): the state names the provider it was issued for.
  if (row.provider !== provider.name) throw await refuse('provider_mismatch')
  if (
    input.browserSecret === undefined ||
    !sameDigest(sha256(input.browserSecret), row.browser_hash)
  ) {
    throw await refuse('browser_mismatch')
  }
  if (!redirectUriAllowed(t.config, row.redirect_uri))
    throw await refuse('redirect_uri_not_allowed')

  // The client's `state` goes back on every outcome, so a client can tell its own flows' answers
  // from ones an attacker steered its browser to.
  const back = (params: Record<string, string>) => {
    const url = new URL(row.redirect_uri)
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
    if (row.client_state !== null) url.searchParams.set('state', row.client_state)
    return url.toString()
  }
  const fail = async (code: CallbackErrorCode) => {
    t.federationMetrics.count(provider.name, code)
    await recordAudit(t.db, t.clock, {
      event: 'federated_login_failed',
      userId: row.link_user_id,
      ip: input.client.ip,
      detail: { provider: provider.name, reason: code },
    })
    return back({ error: code })
  }

  let identity: ProviderIdentity
  try {
    identity = withoutControlCharacters(
      await provider.complete({
        state,
        codeVerifier: row.code_verifier,
        nonce: row.nonce,
        callbackUrl: callbackUrl(t, provider.name),
        callbackParameters: input.callbackParameters,
      }),
    )
  } catch (error) {
    if (error instanceof ProviderError) {
      t.logger.warn(
        { provider: provider.name, err: error.cause ?? error },
        'federated login refused',
      )
      return fail(error.code)
    }
    throw error
  }

  if (row.link_user_id !== null) {
    const outcome = await linkIdentity(
      t,
      row.link_user_id,
      row.link_session_id,
      provider.name,
      identity,
      input.client,
    )
    if (outcome !== 'linked') return fail(outcome)
    t.federationMetrics.count(provider.name, 'linked')
    return back({ linked: provider.name })
  }
  if (provider.linkOnly) return fail('link_required')
  const outcome = await loginOrRegister(t, provider.name, identity, input.client)
  if (typeof outcome === 'string') return fail(outcome)
  const amr = providerAmr(t.config, provider.name, identity)
  return back({
    code: await createLoginCode(t, outcome.id, provider.name, row.client_code_challenge, amr),
  })
}

/**
 * The methods a provider's login proved (README, "Second factors"): `fed`, and `mfa` too when
 * the provider asserted MFA (`ProviderIdentity.assertsMfa`) and MFA_TRUST_PROVIDER_AMR names it;
 * then the account's own second factor is not asked for. Undefined: the default, `fed`.
 */
function providerAmr(
  config: Pick<Config, 'mfaTrustProviderAmr'>,
  provider: OAuthProviderName,
  identity: ProviderIdentity,
): string[] | undefined {
  if (!identity.assertsMfa || !config.mfaTrustProviderAmr.includes(provider)) return undefined
  return ['fed', 'mfa']
}

function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * A provider's text gets the rule of every text field (src/text.ts) before it reaches the
 * database: control characters are dropped from the name (it is only shown), an email holding
 * one is not used (as if the provider had given none), and a subject holding one is refused
 * (it is the identity's key: changing it would make it another identity).
 */
function withoutControlCharacters(identity: ProviderIdentity): ProviderIdentity {
  if (hasControlCharacters(identity.subject)) {
    throw new ProviderError('provider_error', 'the provider gave a subject with control characters')
  }
  const name = identity.name === null ? null : stripControlCharacters(identity.name).trim()
  return {
    subject: identity.subject,
    email: identity.email !== null && hasControlCharacters(identity.email) ? null : identity.email,
    name: name === '' ? null : name,
    assertsMfa: identity.assertsMfa,
  }
}

/**
 * Adds (provider, subject) to a logged-in user. Never by email: the identity proves control of
 * the upstream account, the recently authenticated session proves control of this one. Linking
 * CILogon makes the account verified and a `regular` one `academic` (openapi.yaml).
 */
async function linkIdentity(
  t: FlowDeps,
  userId: string,
  sessionId: string | null,
  provider: OAuthProviderName,
  identity: ProviderIdentity,
  client: ClientContext,
): Promise<'linked' | CallbackErrorCode> {
  const user = await t.db
    .selectFrom('users')
    .selectAll()
    .where('id', '=', userId)
    .executeTakeFirst()
  if (user === undefined || user.disabled !== 0) return 'account_disabled'
  const existing = await findIdentity(t.db, provider, identity.subject)
  if (existing !== undefined) return existing.user_id === userId ? 'linked' : 'identity_taken'
  const other = await t.db
    .selectFrom('identities')
    .select('subject')
    .where('user_id', '=', userId)
    .where('provider', '=', provider)
    .executeTakeFirst()
  if (other !== undefined) return 'provider_already_linked'
  if (sessionId === null) return 'session_ended'
  try {
    return await t.db.transaction().execute(async (tx) => {
      // Locks in the order every change of the account takes them, user row then session rows
      // (a password change or a disable writes the user, then revokes the sessions): the
      // opposite order deadlocks against them on PostgreSQL. Both writes leave the rows as they
      // are and only take the locks.
      const now = t.clock()
      const enabled = await tx
        .updateTable('users')
        .set((eb) => ({ updated_at: eb.ref('updated_at') }))
        .where('id', '=', userId)
        .where('disabled', '=', 0)
        .executeTakeFirst()
      if (enabled.numUpdatedRows === 0n) return 'account_disabled' as const
      // The session that started the flow must still be live: a link started before a logout-all
      // or a password change must not complete after it. A concurrent revocation either commits
      // first and is seen here, or waits for this link and revokes the session after it.
      const live = await tx
        .updateTable('sessions')
        .set((eb) => ({ last_used_at: eb.ref('last_used_at') }))
        .where('id', '=', sessionId)
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        // A browser session (the account page's link button) also ends when idle (README,
        // "Pages"); an API session's refresh tokens are not this flow's business.
        .where((eb) =>
          eb.or([
            eb('kind', '=', 'api'),
            eb('last_used_at', '>', now - t.config.browserSessionIdleTtl * 1000),
          ]),
        )
        .executeTakeFirst()
      if (live.numUpdatedRows === 0n) return 'session_ended' as const
      await tx
        .insertInto('identities')
        .values({
          provider,
          subject: identity.subject,
          user_id: userId,
          email: identity.email,
          created_at: now,
        })
        .execute()
      if (PROVIDERS[provider].grantsAcademic) await markAcademic(tx, userId, now)
      if (identity.email !== null) await markEmailVouched(tx, userId, identity.email, now)
      // The owner's notice (README, "Recent authentication"); by email once Tessera sends email.
      await recordAudit(tx, t.clock, {
        event: 'identity_linked',
        userId,
        sessionId,
        ip: client.ip,
        detail: { provider },
      })
      return 'linked' as const
    })
  } catch (error) {
    // Another request linked the same identity first.
    if (isUniqueViolation(error)) return 'identity_taken'
    throw error
  }
}

async function markAcademic(db: Kysely<Database>, userId: string, now: number): Promise<void> {
  await db
    .updateTable('users')
    .set({ verified: 1, updated_at: now })
    .where('id', '=', userId)
    .execute()
  await db
    .updateTable('users')
    .set({ account_type: 'academic' })
    .where('id', '=', userId)
    .where('account_type', '=', 'regular')
    .execute()
}

/**
 * A linked provider that vouches for the account's own address (only verified addresses are
 * taken from providers) proves it as a mailed token would (README, "Email verification").
 */
async function markEmailVouched(
  db: Kysely<Database>,
  userId: string,
  email: string,
  now: number,
): Promise<void> {
  await db
    .updateTable('users')
    .set({ email_verified: 1, updated_at: now })
    .where('id', '=', userId)
    .where('email_normalized', '=', normalizeEmail(email).normalized)
    .where('email_verified', '=', 0)
    .execute()
}

function findIdentity(db: Kysely<Database>, provider: string, subject: string) {
  return db
    .selectFrom('identities')
    .select(['user_id'])
    .where('provider', '=', provider)
    .where('subject', '=', subject)
    .executeTakeFirst()
}

/**
 * A known identity logs its user in. An unknown one creates a new account (`regular`, or
 * `academic` and verified for CILogon) named by the provider's verified email, unless that email
 * already belongs to an account: then `account_exists`, and the user must log in and link.
 */
async function loginOrRegister(
  t: FlowDeps,
  provider: OAuthProviderName,
  identity: ProviderIdentity,
  client: ClientContext,
): Promise<User | CallbackErrorCode> {
  const existing = await findIdentity(t.db, provider, identity.subject)
  if (existing !== undefined) {
    const user = await getUser(t.db, existing.user_id)
    return user.disabled === 0 ? user : 'account_disabled'
  }
  if (identity.email === null) return 'email_required'
  let normalized: { email: string; normalized: string }
  try {
    normalized = normalizeEmail(identity.email)
  } catch {
    return 'email_required'
  }
  const now = t.clock()
  const academic = PROVIDERS[provider].grantsAcademic
  const user: User = {
    id: randomUUID(),
    email: normalized.email,
    email_normalized: normalized.normalized,
    password_hash: null,
    display_name: identity.name?.slice(0, 200) ?? null,
    account_type: academic ? 'academic' : 'regular',
    verified: academic ? 1 : 0,
    // The provider vouched for it: only verified addresses are taken (src/federation/providers.ts).
    email_verified: 1,
    disabled: 0,
    role: null,
    created_at: now,
    updated_at: now,
    credential_version: 0,
  }
  try {
    await t.db.transaction().execute(async (tx) => {
      await tx.insertInto('users').values(user).execute()
      await tx
        .insertInto('identities')
        .values({
          provider,
          subject: identity.subject,
          user_id: user.id,
          email: identity.email,
          created_at: now,
        })
        .execute()
      await recordAudit(tx, t.clock, {
        event: 'user_registered',
        userId: user.id,
        ip: client.ip,
        detail: { account_type: user.account_type, method: provider },
      })
    })
  } catch (error) {
    if (!isUniqueViolation(error)) throw error
    // Either the email is taken, or a concurrent first login created this identity.
    const raced = await findIdentity(t.db, provider, identity.subject)
    if (raced !== undefined) return getUser(t.db, raced.user_id)
    return 'account_exists'
  }
  return user
}

/**
 * Where a one-time login code came from (`login_codes.provider`, the audit event's `method` and
 * the `provider` label of `tessera_federated_logins_total` at its exchange): the federated
 * provider of a flow, or Tessera's sign-in page (README, "Pages"): `password` for a code minted
 * right after a password sign-in there, `session` for one minted from a browser session that was
 * already signed in (by any method).
 */
export type LoginCodeOrigin = OAuthProviderName | 'password' | 'session'

/**
 * A single-use code (LOGIN_CODE_TTL_SECONDS) a client swaps for a token pair at
 * `exchangeLoginCode`; only its hash is stored. `codeChallenge` binds it to the client's PKCE
 * verifier (null only under OAUTH_CLIENT_PKCE=optional). `amr`: the methods its session opens
 * with (README, "Second factors"): the browser session's for a code of the sign-in page, so a
 * sign-in that passed MFA hands the application a session that did too; undefined for the
 * origin's default (`defaultAmr`).
 */
export async function createLoginCode(
  t: { db: Kysely<Database>; clock: FlowDeps['clock'] },
  userId: string,
  provider: LoginCodeOrigin,
  codeChallenge: string | null,
  amr?: readonly string[],
): Promise<string> {
  const code = LOGIN_CODE_PREFIX + random256()
  const now = t.clock()
  await t.db.deleteFrom('login_codes').where('expires_at', '<', now).execute()
  await t.db
    .insertInto('login_codes')
    .values({
      code_hash: sha256(code),
      user_id: userId,
      provider,
      code_challenge: codeChallenge,
      amr: storedAmr(amr),
      created_at: now,
      expires_at: now + LOGIN_CODE_TTL_SECONDS * 1000,
      used_at: null,
    })
    .execute()
  return code
}

/**
 * Swaps a one-time login code for a token pair: `claimLoginCode`, then a new API session.
 */
export async function exchangeLoginCode(
  t: FlowDeps,
  code: string,
  codeVerifier: string | undefined,
  client: ClientContext,
  grant?: AccessGrant,
): Promise<TokenPair> {
  const claimed = await claimLoginCode(t, code, codeVerifier)
  const challenge = await federatedSecondFactor(t, claimed, grant)
  if (challenge !== undefined) throw challenge
  const pair = await openSession(t, claimed.user, client, {
    method: claimed.provider,
    amr: claimed.amr,
    grant,
  })
  // `tessera_federated_logins_total`, not `tessera_logins_total`: that one counts password logins.
  t.federationMetrics.count(claimed.provider, 'ok')
  return pair
}

/**
 * A provider proves the first factor only (README, "Second factors"): an account with a second
 * factor that signs in through one gets the `mfa_required` problem and its ticket, as a password
 * login does, unless the code carries `mfa` (a trusted provider asserted it: `providerAmr`).
 * Codes minted by Tessera's sign-in page (`password`, `session`) follow a sign-in that already
 * passed the pages' MFA step.
 */
export function federatedSecondFactor(
  t: Pick<FlowDeps, 'db' | 'clock'>,
  claimed: ClaimedLoginCode,
  grant?: AccessGrant,
): Promise<TesseraError | undefined> {
  if (claimed.provider === 'password' || claimed.provider === 'session') {
    return Promise.resolve(undefined)
  }
  return secondFactorChallenge(t, {
    userId: claimed.user.id,
    method: claimed.provider,
    amr: claimed.amr ?? ['fed'],
    grant,
  })
}

export interface ClaimedLoginCode {
  user: User
  provider: LoginCodeOrigin
  /** The methods stored with the code; undefined for the origin's default. */
  amr: string[] | undefined
}

/**
 * Redeems a one-time login code: one conditional UPDATE claims it, so a code is redeemed at most
 * once across replicas; unknown, spent and expired codes look alike. A code issued with the
 * client's PKCE challenge needs its verifier; the claim comes first, so a wrong or missing
 * verifier spends the code too (no guessing the verifier against one code). The caller opens the
 * session (a token pair at the exchange, a browser session on the sign-in page) and counts `ok`.
 */
export async function claimLoginCode(
  t: Pick<FlowDeps, 'db' | 'clock' | 'config' | 'federationMetrics'>,
  code: string,
  codeVerifier: string | undefined,
): Promise<ClaimedLoginCode> {
  const now = t.clock()
  const claimed = LOGIN_CODE_PATTERN.test(code)
    ? await t.db
        .updateTable('login_codes')
        .set({ used_at: now })
        .where('code_hash', '=', sha256(code))
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .returning(['user_id', 'provider', 'code_challenge', 'amr'])
        .executeTakeFirst()
    : undefined
  if (claimed === undefined || !verifierMatches(t, claimed.code_challenge, codeVerifier)) {
    t.federationMetrics.count(null, 'invalid_login_code')
    throw new TesseraError(
      'invalid_login_code',
      'The login code is unknown, expired or already used',
    )
  }
  const user = await getUser(t.db, claimed.user_id)
  if (user.disabled !== 0) {
    t.federationMetrics.count(claimed.provider, 'account_disabled')
    throw new TesseraError('account_disabled', 'This account is disabled')
  }
  return {
    user,
    provider: claimed.provider as LoginCodeOrigin,
    amr: parseStoredAmr(claimed.amr),
  }
}

/**
 * A code without a challenge (OAUTH_CLIENT_PKCE=optional) is refused to a client that sends a
 * verifier: such a client does PKCE, and the code is not from its flow.
 */
function verifierMatches(
  t: Pick<FlowDeps, 'config'>,
  challenge: string | null,
  verifier: string | undefined,
): boolean {
  if (challenge === null) return verifier === undefined && t.config.oauth.clientPkce === 'optional'
  if (verifier === undefined || !CODE_VERIFIER_PATTERN.test(verifier)) return false
  return sameDigest(sha256(verifier), challenge)
}

/**
 * Removes the user's identity of one provider, unless it is the last way to log in: no password
 * and no other identity of a provider that can log in (ORCID cannot). Removing a way in is an
 * account change like linking one, so the session must have proved the account recently
 * (README, "Recent authentication").
 */
export async function unlinkIdentity(
  t: FlowDeps,
  session: { sub: string; sid: string },
  provider: string,
  client: ClientContext,
): Promise<void> {
  await requireRecentAuthentication(t, session.sid)
  const { sub: userId, sid: sessionId } = session
  await t.db.transaction().execute(async (tx) => {
    // Touching the user row first takes its write lock (both dialects), so two concurrent
    // unlinks cannot each see the other's identity as the remaining way to log in.
    await tx.updateTable('users').set({ updated_at: t.clock() }).where('id', '=', userId).execute()
    const user = await getUser(tx, userId)
    const identities = await tx
      .selectFrom('identities')
      .select(['provider'])
      .where('user_id', '=', userId)
      .execute()
    if (!identities.some((i) => i.provider === provider)) {
      throw new TesseraError('not_found', `No ${provider} identity is linked to this account`)
    }
    const remainingLogins = identities.filter(
      (i) => i.provider !== provider && canLogInWith(i.provider),
    )
    if (user.password_hash === null && remainingLogins.length === 0) {
      throw new TesseraError(
        'last_login_method',
        'This identity is the only way to log in to the account; ' +
          'set a password or link another provider first',
      )
    }
    await tx
      .deleteFrom('identities')
      .where('user_id', '=', userId)
      .where('provider', '=', provider)
      .execute()
    await recordAudit(tx, t.clock, {
      event: 'identity_unlinked',
      userId,
      sessionId,
      ip: client.ip,
      detail: { provider },
    })
  })
}
