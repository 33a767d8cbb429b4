import { createHash, timingSafeEqual } from 'node:crypto'

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

/**
 * The configured secrets' digests, computed once rather than on every request (introspection
 * checks X-Service-Secret on each call; docs/performance.md). A process has one or two configured
 * secrets; the bound only guards against a caller that passes many.
 */
const configuredDigests = new Map<string, Buffer>()

/**
 * Compares a presented shared secret with the configured one in constant time. Both sides are
 * hashed first, so lengths never differ (no length leak, no throw on a length mismatch).
 */
export function serviceSecretMatches(configured: string, presented: string | undefined): boolean {
  if (presented === undefined) return false
  let expected = configuredDigests.get(configured)
  if (expected === undefined) {
    expected = digest(configured)
    if (configuredDigests.size >= 8) configuredDigests.clear()
    configuredDigests.set(configured, expected)
  }
  return timingSafeEqual(expected, digest(presented))
}
