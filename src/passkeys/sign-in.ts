import type { AuthenticationResponseJSON } from '@simplewebauthn/server'
import type { Metrics } from '../metrics.js'
import { type OpenSessionDeps, openSession } from '../sessions/open-session.js'
import type { ClientContext } from '../sessions/sessions.js'
import type { TokenPair } from '../tokens/token-pair.js'
import { verifyPasskeySignIn } from './authentication.js'
import type { PasskeyDeps } from './passkeys.js'

export type PasskeyLoginDeps = PasskeyDeps & OpenSessionDeps & { metrics: Pick<Metrics, 'logins'> }

/**
 * Passwordless login of the API (README, "Passkeys"): a verified assertion of a discoverable
 * passkey, then a new session (`login_succeeded` with method `passkey`) and its token pair.
 * The session's `amr` is the passkey's (`passkeyAmr`): with user verification, two factors.
 */
export async function loginWithPasskey(
  t: PasskeyLoginDeps,
  input: { challenge: string; response: AuthenticationResponseJSON },
  client: ClientContext,
): Promise<{ pair: TokenPair; amr: string[] }> {
  const verified = await verifyPasskeySignIn(t, input, client)
  const pair = await openSession(t, verified.user, client, {
    method: 'passkey',
    amr: verified.amr,
  })
  t.metrics.logins.inc({ outcome: 'ok' })
  return { pair, amr: verified.amr }
}
