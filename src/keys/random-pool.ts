import { randomFillSync } from 'node:crypto'

/**
 * CSPRNG bytes handed out from a pool filled 4 KiB at a time by node:crypto's `randomFillSync`
 * (as Node pools the bytes of `randomUUID`): one call to the CSPRNG per 4 KiB instead of one per
 * refresh token or AES-GCM nonce, which was several per cent of a refresh's time
 * (docs/performance.md, "Refresh on SQLite"). Each byte is handed out once, as a copy, and zeroed
 * in the pool at once, so no two callers ever get the same bytes and none stay behind.
 */
const POOL_BYTES = 4096
const pool = Buffer.alloc(POOL_BYTES)
let offset = POOL_BYTES

/** `size` fresh random bytes (at most 4 KiB), never handed out before. */
export function pooledRandomBytes(size: number): Buffer {
  if (!Number.isInteger(size) || size < 1 || size > POOL_BYTES) {
    throw new RangeError(`pooledRandomBytes: size must be 1 to ${POOL_BYTES}`)
  }
  if (offset + size > POOL_BYTES) {
    randomFillSync(pool)
    offset = 0
  }
  const bytes = Buffer.from(pool.subarray(offset, offset + size))
  pool.fill(0, offset, offset + size)
  offset += size
  return bytes
}
