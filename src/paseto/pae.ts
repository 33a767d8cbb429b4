/**
 * Pre-authentication encoding (PASETO Common.md, "PAE Definition") for v4.public: the bytes a
 * signature covers, shared by the signer (src/tokens/sign.ts) and the verifier.
 */
import { Buffer } from 'node:buffer'

/** `h` in the v4.public signature input `PAE(h, m, f, i)`. */
export const V4_PUBLIC_HEADER: Uint8Array = new TextEncoder().encode('v4.public.')

/** Writes PAE's LE64 of `n` (most significant bit cleared) at `offset`. */
function le64(out: Uint8Array, offset: number, n: number): void {
  const high = Math.floor(n / 0x1_0000_0000) & 0x7fff_ffff
  for (let i = 0; i < 4; i++) {
    out[offset + i] = (n >>> (8 * i)) & 0xff
    out[offset + 4 + i] = (high >>> (8 * i)) & 0xff
  }
}

/**
 * The bytes a v4.public signature covers: `PAE(["v4.public.", message, footer, implicit])`.
 * The same bytes as `PAE` from `paseto` (a test holds them equal), written for the four pieces
 * into one pooled buffer because it runs on every verification: a fresh `Uint8Array` of this size
 * costs more than the rest of the encoding.
 */
export function v4PublicPreAuth(
  message: Uint8Array,
  footer: Uint8Array,
  implicitAssertion: Uint8Array,
): Uint8Array {
  const pieces = [V4_PUBLIC_HEADER, message, footer, implicitAssertion]
  let size = 8
  for (const piece of pieces) size += 8 + piece.byteLength
  // Every byte is written below, so the unzeroed pool memory never shows through.
  const out = Buffer.allocUnsafe(size)
  le64(out, 0, pieces.length)
  let offset = 8
  for (const piece of pieces) {
    le64(out, offset, piece.byteLength)
    out.set(piece, offset + 8)
    offset += 8 + piece.byteLength
  }
  return out
}
