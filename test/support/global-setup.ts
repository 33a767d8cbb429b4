import type { TestProject } from 'vitest/node'
import { TEST_POSTGRES_URL, postgresReachable } from './postgres.js'

export default async function setup(project: TestProject): Promise<void> {
  project.provide('postgres', false)
  if (process.env.TEST_DIALECTS === 'sqlite') return
  const problem = await postgresReachable(TEST_POSTGRES_URL)
  if (problem === undefined) {
    project.provide('postgres', true)
    return
  }
  const reason = `PostgreSQL at ${TEST_POSTGRES_URL.replace(/\/\/[^@]*@/, '//')} is not reachable (${problem})`
  if (process.env.CI === 'true') {
    throw new Error(`${reason}: CI must run the PostgreSQL half of the suite`)
  }
  console.warn(`\n[tessera] Skipping the PostgreSQL half of the suite: ${reason}.\n`)
}
