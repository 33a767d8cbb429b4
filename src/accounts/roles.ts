import type { Config } from '../config/index.js'
import { TesseraError } from '../errors.js'

/**
 * The role a user picks for themselves at registration (the sequence archive's `role`): one of
 * SELF_ASSIGNABLE_ROLES, never an administrative one (README, "Configuration"). No choice means
 * the first of them, or no role when the list is empty.
 */
export function selfAssignedRole(
  config: Pick<Config, 'selfAssignableRoles'>,
  requested: string | null,
): string | null {
  const allowed = config.selfAssignableRoles
  const role = requested ?? allowed[0] ?? null
  if (role !== null && !allowed.includes(role)) {
    const message = `must be one of ${allowed.join(', ')}`
    throw new TesseraError('validation_failed', `role: ${message}`, {
      errors: [{ field: 'role', message }],
    })
  }
  return role
}
