/**
 * Email normalisation (SECURITY.md, "Passwords and login"): the address is kept as the user typed
 * it (trimmed) for display and mail, and a normalised form is the unique key.
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
