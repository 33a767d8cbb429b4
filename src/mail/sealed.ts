import { isEncryptedSecret, seal, unseal } from '../keys/key-encryption.js'

/**
 * Secrets in a queued mail's data (a reset link and code) are sealed under KEY_ENCRYPTION_KEY
 * (src/keys/key-encryption.ts), bound to the recipient, so the queue table, like every other one,
 * holds no usable token (docs/security.md, "Secrets in transit and at rest"). The sender opens
 * them just before rendering.
 */
const PURPOSE = 'mail-data v1'

export function sealMailSecret(kek: string | undefined, to: string, value: string): string {
  return kek === undefined ? value : seal(kek, PURPOSE, to, value)
}

/** The data with its sealed values opened; throws if one does not open (another key, row). */
export function openMailData(
  kek: string | undefined,
  to: string,
  data: Record<string, string>,
): Record<string, string> {
  const opened: Record<string, string> = {}
  for (const [name, value] of Object.entries(data)) {
    if (!isEncryptedSecret(value)) {
      opened[name] = value
      continue
    }
    const plain = kek === undefined ? undefined : unseal(kek, PURPOSE, to, value)
    if (plain === undefined) throw new Error(`the sealed ${name} does not open`)
    opened[name] = plain
  }
  return opened
}
