/**
 * In-process rates for the verify figures of `npm run bench`, measured so that machine noise
 * falls on every operation alike: many short rounds, the operations alternated within each
 * round, and each ratio taken per round, then the median over the rounds. A burst of load from
 * another process during one round then moves one round's ratio, not the figure
 * (docs/performance.md, "Verify: alternated rounds").
 */

/** Runs fn repeatedly for `ms` and returns operations per second. */
export async function opsPerSecond(
  fn: () => unknown | Promise<unknown>,
  ms = 2000,
): Promise<number> {
  const end = performance.now() + ms
  let n = 0
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await fn()
    n += 100
  }
  return (n * 1000) / ms
}

export interface AlternatedRates {
  /** Each operation's mean rate over the rounds (per second). */
  rates: number[]
  /** Each operation's median, over the rounds, of its rate ÷ the first operation's (1 for it). */
  ratios: number[]
}

/** `rounds` rounds of `ms` per operation, alternated; the first operation is the baseline. */
export async function alternatedRates(
  operations: ReadonlyArray<() => unknown | Promise<unknown>>,
  rounds = 24,
  ms = 250,
): Promise<AlternatedRates> {
  const samples = operations.map(() => [] as number[])
  for (let round = 0; round < rounds; round++) {
    for (const [i, operation] of operations.entries()) {
      samples[i]?.push(await opsPerSecond(operation, ms))
    }
  }
  const baseline = samples[0] ?? []
  return {
    rates: samples.map((s) => s.reduce((a, b) => a + b, 0) / s.length),
    ratios: samples.map((s) => median(s.map((rate, round) => rate / (baseline[round] ?? rate)))),
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}
