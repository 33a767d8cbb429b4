/**
 * @simplewebauthn/server, loaded on the first passkey request rather than at start: with its
 * ASN.1 and X.509 dependencies it was the largest single part of the server's start-up
 * (docs/performance.md, "Start-up"), for routes most deployments use rarely.
 */
let library: Promise<typeof import('@simplewebauthn/server')> | undefined

export function webauthn(): Promise<typeof import('@simplewebauthn/server')> {
  library ??= import('@simplewebauthn/server')
  return library
}
