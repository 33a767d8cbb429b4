import { describe, expect, it } from 'vitest'
import { createSemaphore } from '../../src/accounts/semaphore.js'
import { TesseraError } from '../../src/errors.js'

interface Gate {
  promise: Promise<void>
  open: () => void
}
function gate(): Gate {
  let open!: () => void
  const promise = new Promise<void>((resolve) => {
    open = resolve
  })
  return { promise, open }
}
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('createSemaphore', () => {
  it('runs at most `max` functions at once and the rest in FIFO order', async () => {
    const sem = createSemaphore(2, 10)
    const gates = Array.from({ length: 5 }, gate)
    const started: number[] = []
    let running = 0
    let peak = 0
    const results = gates.map((g, i) =>
      sem.run(async () => {
        started.push(i)
        running++
        peak = Math.max(peak, running)
        await g.promise
        running--
        return i * 10
      }),
    )
    expect(sem.stats()).toEqual({ active: 2, queued: 3 })
    await tick()
    expect(started).toEqual([0, 1])

    // Free slot 1 first: the oldest waiter (2) gets it, not a later one.
    gates[1]!.open()
    await tick()
    expect(started).toEqual([0, 1, 2])
    expect(sem.stats()).toEqual({ active: 2, queued: 2 })

    gates[0]!.open()
    await tick()
    expect(started).toEqual([0, 1, 2, 3])
    gates[3]!.open()
    await tick()
    expect(started).toEqual([0, 1, 2, 3, 4])
    gates[2]!.open()
    gates[4]!.open()

    expect(await Promise.all(results)).toEqual([0, 10, 20, 30, 40])
    expect(peak).toBe(2)
    expect(sem.stats()).toEqual({ active: 0, queued: 0 })
  })

  it('rejects at once with rate_limited when more than maxQueued would wait', async () => {
    const sem = createSemaphore(1, 2)
    const g = gate()
    const ran: number[] = []
    const accepted = [0, 1, 2].map((i) =>
      sem.run(async () => {
        ran.push(i)
        await g.promise
      }),
    )
    expect(sem.stats()).toEqual({ active: 1, queued: 2 })

    const overflow = sem.run(() => {
      ran.push(99)
    })
    const err = await overflow.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(TesseraError)
    expect((err as TesseraError).code).toBe('rate_limited')
    expect((err as TesseraError).retryAfter).toBe(1)
    // Refused before the others finished, and the refused function never ran.
    expect(sem.stats()).toEqual({ active: 1, queued: 2 })

    g.open()
    await Promise.all(accepted)
    expect(ran).toEqual([0, 1, 2])
    expect(sem.stats()).toEqual({ active: 0, queued: 0 })

    // Capacity is back once the queue drained.
    await expect(sem.run(() => 'ok')).resolves.toBe('ok')
  })

  it('uses the given overflow error', async () => {
    const sem = createSemaphore(1, 0, () => new Error('custom overflow'))
    const g = gate()
    const first = sem.run(() => g.promise)
    await expect(sem.run(() => 1)).rejects.toThrow('custom overflow')
    g.open()
    await first
  })

  it('releases the slot when the function throws or rejects', async () => {
    const sem = createSemaphore(1, 5)
    await expect(
      sem.run(() => {
        throw new Error('sync boom')
      }),
    ).rejects.toThrow('sync boom')
    await expect(sem.run(() => Promise.reject(new Error('async boom')))).rejects.toThrow(
      'async boom',
    )
    expect(sem.stats()).toEqual({ active: 0, queued: 0 })
    await expect(sem.run(() => 7)).resolves.toBe(7)
  })

  it('refuses nonsensical limits', () => {
    expect(() => createSemaphore(0, 1)).toThrow(RangeError)
    expect(() => createSemaphore(1.5, 1)).toThrow(RangeError)
    expect(() => createSemaphore(1, -1)).toThrow(RangeError)
  })
})
