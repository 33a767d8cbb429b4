import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Compares a presented shared secret with the configured one in constant time. Both sides are
 * hashed first, so lengths never differ (no length leak, no throw on a length mismatch).
 */
export function serviceSecretMatches(configured: string, presented: string | undefined): boolean {
  if (presented === undefined) return false
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()
  return timingSafeEqual(digest(configured), digest(presented))
}
