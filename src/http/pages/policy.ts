import type { Tessera } from '../../tessera.js'

/**
 * The pages' Content-Security-Policy (README, "Pages"): no script (but the passkey script of the
 * sign-in and account pages, `options.script`), the one stylesheet and
 * images from Tessera itself, no framing, no <base>. `form-action` also names where a form's
 * answer may redirect the browser, since Chromium applies it to the redirects after a form post:
 * the enabled providers' authorization origins (the sign-in and link buttons) and the origins of
 * the OAUTH_REDIRECT_URIS applications a sign-in continues to, loopback ones on any port.
 */
export function pagePolicy(
  t: Pick<Tessera, 'config' | 'federation'>,
  options: { script?: boolean } = {},
): string {
  const formTargets = new Set<string>(["'self'"])
  for (const name of t.federation.enabled()) {
    for (const origin of t.federation.get(name)?.authorizationOrigins() ?? [])
      formTargets.add(origin)
  }
  for (const uri of t.config.oauth.redirectUris) {
    if (URL.canParse(uri)) {
      const { origin } = new URL(uri)
      // A custom scheme (`app://`) has an opaque origin: name the scheme instead.
      formTargets.add(origin === 'null' ? new URL(uri).protocol : origin)
    }
  }
  // Loopback redirect URIs of command-line logins match on any port (README, "Federated login").
  formTargets.add('http://127.0.0.1:*')
  formTargets.add('http://[::1]:*')
  return [
    "default-src 'none'",
    // The sign-in and account pages only: Tessera's own passkey script, which asks the page's
    // routes for WebAuthn options (README, "Passkeys"). No inline script anywhere.
    ...(options.script === true ? ["script-src 'self'", "connect-src 'self'"] : []),
    "style-src 'self'",
    "img-src 'self'",
    `form-action ${[...formTargets].join(' ')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ')
}
