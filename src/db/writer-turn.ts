/**
 * The turn at one SQLite file among the threads of one process (docs/performance.md, "Refresh on
 * SQLite: the writer thread"). SQLite lets one connection write at a time and makes the others
 * wait in its busy handler, which sleeps the thread: on the main thread that would stall every
 * request, and a deferred transaction that read before another connection's commit cannot write
 * at all (SQLITE_BUSY_SNAPSHOT). So the threads of a process take turns here first: the main
 * thread around every use of its connection (connect.ts), waiting without blocking; the refresh
 * writer thread (src/sessions/refresh-writer.ts) around each of its transactions, blocking, as
 * it has nothing else to do. Between processes on one file SQLite's own lock still decides.
 *
 * A ticket lock: turns are served in the order they were asked for, so neither thread can starve
 * the other. The state is two counters in shared memory, handed to a worker as `shared`.
 */
export interface WriterTurn {
  readonly shared: SharedArrayBuffer
  /** Waits, without blocking the thread, for this thread's turn. */
  take(): Promise<void>
  /** Takes the turn if nobody holds it or waits for it; false otherwise. */
  tryTake(): boolean
  give(): void
  /**
   * Blocks the thread until its turn: the one worker's that takes turns at this file (the main
   * thread must never block). Its ticket is noted, so that `recoverAbandoned` can serve it.
   */
  takeBlocking(): void
  /** `give` for a turn `takeBlocking` took. */
  giveBlocking(): void
  /**
   * After that worker ended without giving (V8 ended it: out of memory, say), serves the turn it
   * held or waited for, so that the file's other users are not left waiting forever.
   */
  recoverAbandoned(): Promise<void>
}

const NEXT = 0
const SERVING = 1
/** 1 while the blocking taker holds or waits for the ticket in BLOCKING_TICKET. */
const BLOCKING = 2
const BLOCKING_TICKET = 3

export function createWriterTurn(shared = new SharedArrayBuffer(16)): WriterTurn {
  const counters = new Int32Array(shared)
  return {
    shared,
    take: () => served(Atomics.add(counters, NEXT, 1)),
    tryTake() {
      const serving = Atomics.load(counters, SERVING)
      return Atomics.compareExchange(counters, NEXT, serving, serving + 1) === serving
    },
    give,
    takeBlocking() {
      const ticket = Atomics.add(counters, NEXT, 1)
      Atomics.store(counters, BLOCKING_TICKET, ticket)
      Atomics.store(counters, BLOCKING, 1)
      for (;;) {
        const serving = Atomics.load(counters, SERVING)
        if (serving === ticket) return
        Atomics.wait(counters, SERVING, serving)
      }
    },
    giveBlocking() {
      Atomics.store(counters, BLOCKING, 0)
      give()
    },
    async recoverAbandoned() {
      if (Atomics.exchange(counters, BLOCKING, 0) !== 1) return
      await served(Atomics.load(counters, BLOCKING_TICKET))
      give()
    },
  }

  /** Resolves when `ticket` is served, without blocking the thread. */
  async function served(ticket: number): Promise<void> {
    for (;;) {
      const serving = Atomics.load(counters, SERVING)
      if (serving === ticket) return
      const wait = Atomics.waitAsync(counters, SERVING, serving)
      if (wait.async) await wait.value
    }
  }

  function give() {
    Atomics.add(counters, SERVING, 1)
    Atomics.notify(counters, SERVING)
  }
}
