import { TesseraError } from '../errors.js'

/**
 * A counting semaphore with a bounded FIFO queue. At most `max` functions run at once; up to
 * `maxQueued` more wait in arrival order; beyond that `run` rejects at once (by default with
 * `TesseraError('rate_limited')`) rather than queueing without bound.
 */
export interface Semaphore {
  run<T>(fn: () => T | PromiseLike<T>): Promise<T>
  stats(): { active: number; queued: number }
}

export function createSemaphore(
  max: number,
  maxQueued: number,
  overflowError: () => Error = () =>
    new TesseraError('rate_limited', 'Too many operations in progress', { retryAfter: 1 }),
): Semaphore {
  if (!Number.isInteger(max) || max < 1) throw new RangeError('max must be a positive integer')
  if (!Number.isInteger(maxQueued) || maxQueued < 0) {
    throw new RangeError('maxQueued must be a non-negative integer')
  }

  let active = 0
  // Waiters in arrival order. The queue is bounded by `maxQueued`, so `shift` stays cheap.
  const waiters: Array<() => void> = []

  const acquire = (): Promise<void> | undefined => {
    if (active < max) {
      active++
      return undefined
    }
    if (waiters.length >= maxQueued) return Promise.reject(overflowError())
    return new Promise<void>((resolve) => {
      waiters.push(resolve)
    })
  }

  const release = (): void => {
    const next = waiters.shift()
    // Hand the slot straight to the next waiter (`active` unchanged), or free it.
    if (next !== undefined) next()
    else active--
  }

  return {
    async run<T>(fn: () => T | PromiseLike<T>): Promise<T> {
      const wait = acquire()
      if (wait !== undefined) await wait
      try {
        return await fn()
      } finally {
        release()
      }
    },
    stats: () => ({ active, queued: waiters.length }),
  }
}
