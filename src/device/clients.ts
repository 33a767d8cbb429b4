import type { Config } from '../config/index.js'

/** The tessera command's own client id: always allowed to start a device login. */
export const CLI_CLIENT_ID = 'tessera-cli'

/**
 * Device logins are for public clients (RFC 8628 §3.1: no secret): `tessera-cli` and the
 * platform's own tools listed in OAUTH_DEVICE_CLIENTS. A client id only names who asks, for the
 * approving user's eyes and the audit log; it proves nothing.
 */
export function isDeviceClient(config: Pick<Config, 'oauth'>, clientId: string): boolean {
  return clientId === CLI_CLIENT_ID || config.oauth.deviceClients.includes(clientId)
}
