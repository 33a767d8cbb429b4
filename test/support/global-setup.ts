import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { TestProject } from 'vitest/node'
import { postgresReachable, TEST_POSTGRES_URL } from './postgres.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/**
 * The tests that need real processes run the built `tessera` command (bin/tessera.cjs, as
 * installed), so the compiled code is brought up to date once per run (incremental: seconds),
 * and bundled as `npm run build` bundles it (tools/bundle.mjs).
 */
function buildDist(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  for (const args of [[tsc, '-p', 'tsconfig.build.json'], ['tools/bundle.mjs']]) {
    execFileSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' })
  }
}

export default async function setup(project: TestProject): Promise<void> {
  buildDist()
  project.provide('postgres', false)
  if (process.env.TEST_DIALECTS === 'sqlite') return
  const problem = await postgresReachable(TEST_POSTGRES_URL)
  if (problem === undefined) {
    project.provide('postgres', true)
    return
  }
  const server = TEST_POSTGRES_URL.replace(/\/\/[^@]*@/, '//')
  const reason = `PostgreSQL at ${server} is not reachable (${problem})`
  if (process.env.CI === 'true') {
    throw new Error(`${reason}: CI must run the PostgreSQL half of the suite`)
  }
  console.warn(`\n[tessera] Skipping the PostgreSQL half of the suite: ${reason}.\n`)
}
