import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Most test time is spent waiting (on child processes, PostgreSQL, sockets), not computing:
    // vitest's default of one worker fewer than the cores leaves a 2-core machine one worker, and
    // the suite ran file after file. Three keep both cores busy.
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
