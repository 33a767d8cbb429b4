import * as v from 'valibot'
import { hasControlCharacters } from '../text.js'

/**
 * The syntax an address must have to register (the HTTP routes and `tessera user
 * create-superuser`). Login takes any string instead, so a malformed address reads like an
 * unknown one. Bounded so no hashing work starts on a huge input; no control characters
 * (src/text.ts).
 */
export const emailField = v.pipe(
  v.string('must be a string'),
  // After the trim: surrounding whitespace (a tab pasted with the address) is dropped, not refused.
  v.trim(),
  v.check((s) => !hasControlCharacters(s), 'must not contain control characters'),
  v.nonEmpty('is required'),
  v.maxLength(254, 'must be at most 254 characters'),
  v.email('must be an email address'),
)

/**
 * Email normalisation (docs/security.md, "Passwords and login"): the address is kept as the user
 * typed it (trimmed) for display and mail, and a normalised form is the unique key.
 *
 * The key is trimmed, NFKC-normalised, then lower-cased with `toLowerCase` — never upper-cased:
 * upper-casing maps distinct characters together (e.g. `ß` → `SS`, `ı`/`i` → `I`), which would let
 * two different addresses collide on one account. Validation of the syntax happens elsewhere.
 */
export function normalizeEmail(input: string): { email: string; normalized: string } {
  const email = input.trim()
  const normalized = email.normalize('NFKC').toLowerCase()
  return { email, normalized }
}
