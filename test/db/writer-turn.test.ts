/**
 * The turn at a SQLite file among a process's threads (src/db/writer-turn.ts): one holder at a
 * time, served in the order asked, and a `tryTake` that never jumps a queue.
 */
import { describe, expect, it } from 'vitest'
import { createWriterTurn } from '../../src/db/writer-turn.js'

describe('the writer turn', () => {
  it('tryTake takes a free turn only', () => {
    const turn = createWriterTurn()
    expect(turn.tryTake()).toBe(true)
    expect(turn.tryTake()).toBe(false)
    turn.give()
    expect(turn.tryTake()).toBe(true)
    turn.give()
  })

  it('take waits for the holder, and waiters are served in the order they asked', async () => {
    const turn = createWriterTurn()
    expect(turn.tryTake()).toBe(true)
    const order: number[] = []
    const waiters = [1, 2, 3].map((n) =>
      turn.take().then(() => {
        order.push(n)
        turn.give()
      }),
    )
    // Someone waits: tryTake must not jump the queue.
    expect(turn.tryTake()).toBe(false)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(order).toEqual([])
    turn.give()
    await Promise.all(waiters)
    expect(order).toEqual([1, 2, 3])
    expect(turn.tryTake()).toBe(true)
  })

  it('a second view of the same shared memory sees the same turn (another thread)', async () => {
    const main = createWriterTurn()
    const other = createWriterTurn(main.shared)
    other.takeBlocking()
    let taken = false
    const waiting = main.take().then(() => {
      taken = true
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(taken).toBe(false)
    other.give()
    await waiting
    expect(taken).toBe(true)
    main.give()
  })

  it('keeps working where the counters wrap around', () => {
    const turn = createWriterTurn()
    const counters = new Int32Array(turn.shared)
    counters[0] = 2 ** 31 - 1
    counters[1] = 2 ** 31 - 1
    expect(turn.tryTake()).toBe(true)
    turn.give()
    expect(counters[1]).toBe(-(2 ** 31))
    turn.takeBlocking()
    expect(turn.tryTake()).toBe(false)
    turn.give()
    expect(turn.tryTake()).toBe(true)
    turn.give()
  })

  it('serves the turn a blocking taker held when it ended without giving it', async () => {
    const main = createWriterTurn()
    const worker = createWriterTurn(main.shared)
    worker.takeBlocking()
    let taken = false
    const waiting = main.take().then(() => {
      taken = true
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(taken).toBe(false)
    // The worker is gone: nothing will give its turn back but this.
    await main.recoverAbandoned()
    await waiting
    expect(taken).toBe(true)
    main.give()
    // Given back normally, there is nothing to recover.
    worker.takeBlocking()
    worker.giveBlocking()
    await main.recoverAbandoned()
    expect(main.tryTake()).toBe(true)
    main.give()
  })
})
