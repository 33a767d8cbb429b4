/**
 * Loopback redirects for native apps (RFC 8252 §7.3; README, "Federated login"): a command-line
 * client listens on a port the OS picks at that moment, so its redirect URI cannot be listed
 * with the port. An allow-list entry whose host is a loopback IP literal and that names no port
 * matches that URI on any port; this is the one place where the port is not compared. Everything
 * else is compared exactly: scheme, host, path, query and fragment. `localhost` never counts
 * (RFC 8252 §8.3: a name can resolve elsewhere, and a firewall may treat it differently).
 */

/** The `tessera` command's own loopback redirect URI, always allowed (README). */
export const CLI_LOOPBACK_REDIRECT_URI = 'http://127.0.0.1/tessera/callback'

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]'])

/**
 * The URL of a string that is its own canonical form, else undefined. Requiring that refuses
 * every spelling the parser would quietly rewrite (`127.1`, `0x7f.0.0.1`, `/a/../b`, `HTTP:`,
 * an explicit default port), so what was checked is what the browser is sent to.
 */
function canonical(uri: string): URL | undefined {
  if (!URL.canParse(uri)) return undefined
  const url = new URL(uri)
  return url.href === uri ? url : undefined
}

/** Whether `candidate` is the loopback `entry` on some port. */
export function matchesLoopbackEntry(entry: string, candidate: string): boolean {
  const allowed = canonical(entry)
  if (
    allowed === undefined ||
    !LOOPBACK_HOSTS.has(allowed.hostname) ||
    allowed.port !== '' ||
    allowed.username !== '' ||
    allowed.password !== ''
  ) {
    return false
  }
  const url = canonical(candidate)
  return (
    url !== undefined &&
    url.protocol === allowed.protocol &&
    url.username === '' &&
    url.password === '' &&
    url.hostname === allowed.hostname &&
    url.pathname === allowed.pathname &&
    url.search === allowed.search &&
    url.hash === allowed.hash
  )
}
