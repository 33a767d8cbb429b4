import { createRequire } from 'node:module'
import { TesseraError } from '../errors.js'

/**
 * Password rules after NIST SP 800-63B-4 (docs/security.md, "Passwords and login"): length only, in
 * code points of the NFKC form; no composition rules; no truncation; no case folding of the
 * password itself; a blocklist of common passwords.
 */
export interface PasswordPolicy {
  /** Minimum length in code points of the NFKC form (default 8). */
  minLength: number
  /** Maximum length in code points of the NFKC form (default 1024). */
  maxLength: number
}

export const DEFAULT_PASSWORD_POLICY: Readonly<PasswordPolicy> = Object.freeze({
  minLength: 8,
  maxLength: 1024,
})

/**
 * A password is hashed (at registration) and verified (at login) in its NFKC form, so the same
 * password typed with a different keyboard or input method gives the same bytes.
 */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC')
}

/**
 * NFKC can turn several code points into one (composition: Greek with three diacritics is 4 → 1),
 * but not into fewer than a quarter in practice. A raw input longer than this many UTF-16 units
 * per allowed code point is refused before normalising, so an enormous body costs no work.
 */
const RAW_UNITS_PER_CODE_POINT = 8

let blocklist: Set<string> | undefined

/**
 * The zxcvbn-ts common-password list (~49k entries, all lower case), loaded and turned into a Set
 * on first use: importing it costs ~30 ms and several MB, which a process that never registers a
 * password should not pay at start.
 */
function commonPasswords(): Set<string> {
  if (blocklist === undefined) {
    const require = createRequire(import.meta.url)
    const { dictionary } =
      require('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common')
    blocklist = new Set(dictionary['passwords-common'].map((p) => p.toLowerCase()))
  }
  return blocklist
}

/** True when `password` (any case) is on the common-password list. */
export function isCommonPassword(password: string): boolean {
  return commonPasswords().has(password.toLowerCase())
}

/**
 * Checks a new password against the policy and returns the NFKC form to hash. Throws
 * `TesseraError('weak_password', reason)` with a reason a person understands. The reason never
 * contains the password.
 */
export function checkPasswordPolicy(
  password: string,
  policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
): string {
  const { minLength, maxLength } = policy
  const tooLong = `Password is too long: use at most ${maxLength} characters.`
  if (password.length > maxLength * RAW_UNITS_PER_CODE_POINT) {
    throw new TesseraError('weak_password', tooLong)
  }

  const normalized = normalizePassword(password)
  const codePoints = [...normalized]
  if (codePoints.length < minLength) {
    throw new TesseraError(
      'weak_password',
      `Password is too short: use at least ${minLength} characters.`,
    )
  }
  if (codePoints.length > maxLength) {
    throw new TesseraError('weak_password', tooLong)
  }
  if (new Set(codePoints).size === 1) {
    throw new TesseraError(
      'weak_password',
      'Password is a single character repeated: choose a less predictable password.',
    )
  }
  if (isCommonPassword(normalized)) {
    throw new TesseraError(
      'weak_password',
      'Password is on a list of commonly used passwords: choose a different one.',
    )
  }
  return normalized
}
