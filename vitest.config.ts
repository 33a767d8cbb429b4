import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Real argon2 hashes and real databases: keep parallelism to the machine's two cores.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
