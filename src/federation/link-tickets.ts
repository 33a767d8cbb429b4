import { createHash, randomBytes } from 'node:crypto'
import { requireRecentAuthentication } from '../accounts/reauthenticate.js'
import { recordAudit } from '../audit/audit.js'
import type { Config } from '../config/index.js'
import { TesseraError } from '../errors.js'
import { isSessionLive } from '../sessions/sessions.js'
import { type BegunFlow, beginFlow, type FlowDeps, redirectUriAllowed } from './flow.js'
import type { FederationProvider } from './providers.js'

/**
 * Single-use link URLs (README, "Linking from an API client"). A client that holds only a bearer
 * token (a CLI, a front-end on another site) cannot start a link flow in the user's browser with
 * authorize: the flow's browser-binding cookie would be set by the client's own request, not in
 * the browser, or (from another site's page) as a third-party cookie. So the client asks for a
 * ticket and sends the browser to `<issuer>/link/<ticket>`; that top-level navigation starts the
 * link flow, first-party, exactly as authorize does for a bearer link.
 *
 * The ticket is in the URL by design; it is 256 random bits, stored only as its SHA-256, lives
 * 5 minutes, works once (one conditional UPDATE across replicas), and only while the session
 * that asked for it is live. Asking for one needs a recent authentication, as linking does.
 */
export const LINK_TICKET_TTL_SECONDS = 300

const TICKET_PREFIX = 'tessera_lt_'
const TICKET_PATTERN = /^tessera_lt_[A-Za-z0-9_-]{43}$/

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('base64url')

/** Tessera's own page a link flow ends on when the client names none. */
export function linkDoneUrl(config: Pick<Config, 'issuer'>): string {
  return `${config.issuer}/link/done`
}

export interface IssuedLinkTicket {
  /** `<issuer>/link/<ticket>`: where the client sends the browser. */
  url: string
  /** Epoch ms. */
  expiresAt: number
}

/**
 * Issues a ticket that links `provider` to the session's user. The redirect URI must be allowed
 * as for any flow (OAUTH_REDIRECT_URIS or a page of Tessera's own origin); by default the flow
 * ends on `/link/done`. Expired tickets are deleted whenever a new one is made, as states are.
 */
export async function issueLinkTicket(
  t: FlowDeps,
  session: { sub: string; sid: string },
  provider: FederationProvider,
  redirectUri: string | undefined,
): Promise<IssuedLinkTicket> {
  // Linking adds a lasting way into the account: a bearer token alone is not enough.
  await requireRecentAuthentication(t, session.sid)
  const target = redirectUri ?? linkDoneUrl(t.config)
  if (!redirectUriAllowed(t.config, target)) {
    throw new TesseraError('validation_failed', 'redirect_uri is not on the allow-list', {
      errors: [{ field: 'redirect_uri', message: 'must exactly match a configured redirect URI' }],
    })
  }
  const ticket = TICKET_PREFIX + randomBytes(32).toString('base64url')
  const now = t.clock()
  const expiresAt = now + LINK_TICKET_TTL_SECONDS * 1000
  await t.db.deleteFrom('link_tickets').where('expires_at', '<', now).execute()
  await t.db
    .insertInto('link_tickets')
    .values({
      ticket_hash: sha256(ticket),
      user_id: session.sub,
      session_id: session.sid,
      provider: provider.name,
      redirect_uri: target,
      created_at: now,
      expires_at: expiresAt,
      used_at: null,
    })
    .execute()
  return { url: `${t.config.issuer}/link/${ticket}`, expiresAt }
}

/** A redeemed ticket: the flow to start in this browser, or where to send it instead. */
export type RedeemedLinkTicket = ({ started: true } & BegunFlow) | { started: false; url: string }

/**
 * Redeems a ticket once: claims it with one conditional UPDATE (of N presentations, on any
 * replica, one proceeds), then starts the link flow for its user and session. Unknown, spent and
 * expired tickets answer the same `invalid_link_ticket`, so the answer tells nothing about which
 * tickets exist. A ticket whose session has ended since sends the browser to its redirect URI
 * with `?error=session_ended`, as the callback would. A flow that fails to start (the provider
 * cannot be reached) has spent the ticket: the client asks for a new one.
 */
export async function redeemLinkTicket(
  t: FlowDeps,
  ticket: string,
  providerNamed: (name: string) => FederationProvider | undefined,
  client: { ip: string | null },
): Promise<RedeemedLinkTicket> {
  const now = t.clock()
  const row = TICKET_PATTERN.test(ticket)
    ? await t.db
        .updateTable('link_tickets')
        .set({ used_at: now })
        .where('ticket_hash', '=', sha256(ticket))
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .returning(['user_id', 'session_id', 'provider', 'redirect_uri'])
        .executeTakeFirst()
    : undefined
  // A provider switched off since the ticket was issued cannot be linked with it either.
  const provider = row === undefined ? undefined : providerNamed(row.provider)
  if (row === undefined || provider === undefined) {
    throw new TesseraError(
      'invalid_link_ticket',
      'This link is unknown, expired or already used; ask the application for a new one',
    )
  }
  if (!(await isSessionLive(t, row.session_id, row.user_id))) {
    t.federationMetrics.count(provider.name, 'session_ended')
    await recordAudit(t.db, t.clock, {
      event: 'federated_login_failed',
      userId: row.user_id,
      sessionId: row.session_id,
      ip: client.ip,
      detail: { provider: provider.name, reason: 'session_ended' },
    })
    const back = new URL(row.redirect_uri)
    back.searchParams.set('error', 'session_ended')
    return { started: false, url: back.toString() }
  }
  const flow = await beginFlow(t, {
    provider,
    redirectUri: row.redirect_uri,
    link: { userId: row.user_id, sessionId: row.session_id },
    codeChallenge: undefined,
    codeChallengeMethod: undefined,
    clientState: undefined,
  })
  return { started: true, ...flow }
}
