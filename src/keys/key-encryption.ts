import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

/**
 * Signing keys at rest: AES-256-GCM under a key derived (HKDF-SHA256) from KEY_ENCRYPTION_KEY.
 * The key id is the additional authenticated data, so a ciphertext cannot be moved to another
 * key's row.
 */
const PREFIX = 'enc.v1.'

function deriveKey(keyEncryptionKey: string): Buffer {
  return Buffer.from(
    hkdfSync('sha256', keyEncryptionKey, 'tessera', 'signing-key-encryption v1', 32),
  )
}

export function isEncryptedSecret(stored: string): boolean {
  return stored.startsWith(PREFIX)
}

export function encryptSecret(keyEncryptionKey: string, kid: string, plaintext: string): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', deriveKey(keyEncryptionKey), iv)
  cipher.setAAD(Buffer.from(kid))
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return PREFIX + [iv, ciphertext, cipher.getAuthTag()].map((b) => b.toString('base64url')).join('.')
}

export function decryptSecret(keyEncryptionKey: string, kid: string, stored: string): string {
  const parts = stored.slice(PREFIX.length).split('.')
  if (!isEncryptedSecret(stored) || parts.length !== 3) {
    throw new Error(`Signing key ${kid} is not in the encrypted format`)
  }
  const [iv, ciphertext, tag] = parts.map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer]
  const decipher = createDecipheriv('aes-256-gcm', deriveKey(keyEncryptionKey), iv)
  decipher.setAAD(Buffer.from(kid))
  decipher.setAuthTag(tag)
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
  } catch (cause) {
    throw new Error(`Signing key ${kid} cannot be decrypted: wrong KEY_ENCRYPTION_KEY?`, { cause })
  }
}
