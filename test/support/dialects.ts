import { inject } from 'vitest'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set by global-setup.ts: whether the PostgreSQL half of the suite runs. */
    postgres: boolean
  }
}

export type Dialect = 'sqlite' | 'postgres'

/**
 * The databases every dialect-aware test file runs against (`for (const dialect of dialects())`).
 * PostgreSQL joins when global-setup found it reachable; TEST_DIALECTS narrows the list.
 */
export function dialects(): Dialect[] {
  const only = process.env.TEST_DIALECTS?.split(',').map((d) => d.trim())
  const available: Dialect[] = inject('postgres') ? ['sqlite', 'postgres'] : ['sqlite']
  return only === undefined ? available : available.filter((d) => only.includes(d))
}
