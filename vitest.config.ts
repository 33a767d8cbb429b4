import { defineConfig } from 'vitest/config'

/** Files that replace a module (vi.mock) and so need a module graph of their own. */
const MOCKING = ['test/accounts/password-hasher.test.ts']

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Most test time is spent waiting (on child processes, PostgreSQL, sockets), not computing:
    // vitest's default of one worker fewer than the cores leaves a 2-core machine one worker, and
    // the suite ran file after file. Three keep both cores busy.
    maxWorkers: 3,
    testTimeout: 30_000,
    // Hooks start servers and processes; a loaded machine has needed more than 30 s for that.
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'shared',
          include: ['test/**/*.test.ts'],
          exclude: MOCKING,
          // Files of one worker share their imports: importing the server's module graph again
          // for every file was a third of the suite's CPU time. Tests share no module state (each
          // builds its own app, database and clock), so nothing leaks between them.
          isolate: false,
        },
      },
      { extends: true, test: { name: 'isolated', include: MOCKING, isolate: true } },
    ],
  },
})
