/**
 * Crash safety: `kill -9` of one of two replicas in the middle of a refresh load. A refresh is
 * one transaction (claim the presented token, insert its child), so whatever instant the process
 * dies at, the database holds either all of a refresh or none of it, and the survivor goes on.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.js'
import { hashRefreshToken } from '../../src/sessions/refresh-token.js'
import { createTestDatabase, type TestDatabase } from '../support/database.js'
import { type Dialect, dialects } from '../support/dialects.js'
import { startTesseraProcess, type TesseraProcess } from '../support/process.js'
import { PASSWORD, type TokenPairBody, uniqueEmail } from '../support/users.js'

const CHAINS = 12
/** Chains that only ever talk to the survivor, so it is under load before and after the kill. */
const SURVIVOR_CHAINS = 2
const LOAD_BEFORE_KILL_MS = 1_200
const LOAD_AFTER_KILL_MS = 1_000

async function bodyOf<T>(res: Response, status: number): Promise<T> {
  const text = await res.text()
  expect(res.status, text).toBe(status)
  return JSON.parse(text) as T
}

async function registerAndLogin(p: TesseraProcess): Promise<TokenPairBody> {
  const email = uniqueEmail('crash')
  await bodyOf(
    await p.request('/v1/user/auth/register', { json: { email, password: PASSWORD } }),
    201,
  )
  return bodyOf<TokenPairBody>(
    await p.request('/v1/user/auth/login', { json: { email, password: PASSWORD } }),
    200,
  )
}

function refreshAt(p: TesseraProcess, refreshToken: string): Promise<Response> {
  return p.request('/v1/user/auth/refresh', { json: { refresh_token: refreshToken } })
}

/**
 * The invariants of the refresh rule, checked over every family in the database. Each query
 * lists violations, so a failure shows the offending rows.
 */
async function invariantViolations(db: DatabaseHandle['db']) {
  return {
    // At most one live token per family.
    familiesWithSeveralActiveTokens: await db
      .selectFrom('refresh_tokens')
      .select(['family_id', (eb) => eb.fn.countAll().as('active')])
      .where('status', '=', 'active')
      .groupBy('family_id')
      .having((eb) => eb.fn.countAll(), '>', 1)
      .execute(),
    // A revoked session has no live token.
    activeTokensOfRevokedSessions: await db
      .selectFrom('sessions as s')
      .innerJoin('refresh_tokens as t', 't.family_id', 's.id')
      .select(['s.id as session', 't.id as token'])
      .where('s.revoked_at', 'is not', null)
      .where('t.status', '=', 'active')
      .execute(),
    // A live token that has a parent descends from a spent (rotated) token.
    activeTokensWithUnspentParent: await db
      .selectFrom('refresh_tokens as c')
      .leftJoin('refresh_tokens as p', 'p.id', 'c.parent_id')
      .select(['c.id as token', 'c.parent_id', 'p.status as parent_status'])
      .where('c.status', '=', 'active')
      .where('c.parent_id', 'is not', null)
      .where((eb) => eb.or([eb('p.id', 'is', null), eb('p.status', '!=', 'rotated')]))
      .execute(),
    // The claim and the child commit together: no spent token without a successor...
    rotatedTokensWithoutChild: await db
      .selectFrom('refresh_tokens as p')
      .select(['p.id as token', 'p.family_id'])
      .where('p.status', '=', 'rotated')
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('refresh_tokens as c').select('c.id').whereRef('c.parent_id', '=', 'p.id'),
          ),
        ),
      )
      .execute(),
    // ...and, in strict mode (REFRESH_REUSE_INTERVAL=0), never two successors.
    tokensWithSeveralChildren: await db
      .selectFrom('refresh_tokens')
      .select(['parent_id', (eb) => eb.fn.countAll().as('children')])
      .where('parent_id', 'is not', null)
      .groupBy('parent_id')
      .having((eb) => eb.fn.countAll(), '>', 1)
      .execute(),
    // A login commits its session and first token together.
    sessionsWithoutTokens: await db
      .selectFrom('sessions as s')
      .select('s.id as session')
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('refresh_tokens as t').select('t.id').whereRef('t.family_id', '=', 's.id'),
          ),
        ),
      )
      .execute(),
  }
}

const NO_VIOLATIONS = {
  familiesWithSeveralActiveTokens: [],
  activeTokensOfRevokedSessions: [],
  activeTokensWithUnspentParent: [],
  rotatedTokensWithoutChild: [],
  tokensWithSeveralChildren: [],
  sessionsWithoutTokens: [],
}

/** On PostgreSQL, waits until the server has noticed the dead process and ended its backends. */
async function backendsGone(dialect: Dialect, db: DatabaseHandle['db'], applicationName: string) {
  if (dialect !== 'postgres') return
  const deadline = Date.now() + 10_000
  for (;;) {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where application_name = ${applicationName}`.execute(db)
    if (rows[0]!.n === 0) return
    if (Date.now() > deadline)
      throw new Error(`backends of ${applicationName} still open after 10 s`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

interface Chain {
  token: string
  refreshes: number
  survivorOnly: boolean
  /** The token whose refresh was in flight to the killed process when it died. */
  lost?: string
}

/**
 * Each chain refreshes its one session as fast as it can, past any per-session limit. The longest
 * reuse interval, so that a response lost with the victim can still be asked for again after the
 * checks below, however slow the machine.
 */
const LOAD_ENV = { RATE_LIMIT_REFRESH_PER_SESSION: '0', REFRESH_REUSE_INTERVAL: '300' }

/**
 * On SQLite also with the refresh writer thread serving from the first refresh (its transactions
 * commit several presentations at once: docs/performance.md, "Refresh on SQLite: the writer
 * thread"), so the kill lands in its batches.
 */
interface Variant {
  dialect: Dialect
  name: string
  env: Record<string, string>
}
const variants = dialects().flatMap((dialect): Variant[] =>
  dialect === 'sqlite'
    ? [
        { dialect, name: dialect, env: {} },
        { dialect, name: `${dialect}, writer thread`, env: { SQLITE_REFRESH_THREAD_FROM: '1' } },
      ]
    : [{ dialect, name: dialect, env: {} }],
)

for (const { dialect, name, env } of variants) {
  describe(`kill -9 of one replica under a refresh load [${name}]`, { timeout: 90_000 }, () => {
    const tag = `tessera-crash-${process.pid}-${name.replace(/\W+/g, '-')}`
    let database: TestDatabase
    let victim: TesseraProcess
    let survivor: TesseraProcess
    let direct: DatabaseHandle

    beforeAll(async () => {
      database = await createTestDatabase(dialect)
      // PGAPPNAME names each process's connections, so we can see when the victim's are gone.
      ;[victim, survivor] = await Promise.all([
        startTesseraProcess({
          databaseUrl: database.url,
          env: { PGAPPNAME: `${tag}-victim`, ...LOAD_ENV, ...env },
        }),
        startTesseraProcess({
          databaseUrl: database.url,
          env: { PGAPPNAME: `${tag}-survivor`, ...LOAD_ENV, ...env },
        }),
      ])
      direct = await connectDatabase(database.url, { poolSize: 2 })
    }, 60_000)

    afterAll(async () => {
      victim?.kill('SIGKILL')
      await survivor?.stop()
      await direct?.close()
      await database?.drop()
    })

    it('leaves every family consistent, and the survivor keeps serving', async () => {
      // Each chain is one client: it refreshes over and over, alternating between the replicas
      // (or on the survivor only), always with the token its last 200 returned.
      const chains: Chain[] = await Promise.all(
        Array.from({ length: CHAINS + SURVIVOR_CHAINS }, async (_, i) => ({
          token: (await registerAndLogin(i % 2 === 0 ? victim : survivor)).refresh_token,
          refreshes: 0,
          survivorOnly: i >= CHAINS,
        })),
      )
      let armed = false
      let killed = false
      let stopping = false
      const failures: string[] = []
      let onKilled!: () => void
      const victimKilled = new Promise<void>((resolve) => (onKilled = resolve))

      async function drive(chain: Chain, offset: number) {
        for (let n = offset; !stopping; n++) {
          const target = !killed && !chain.survivorOnly && n % 2 === 0 ? victim : survivor
          const presented = chain.token
          if (armed && target === victim) {
            // Kill a few milliseconds after a request left for the victim, so that it most likely
            // dies with that refresh half done rather than between two requests.
            armed = false
            setTimeout(
              () => {
                killed = true
                victim.kill('SIGKILL')
                onKilled()
              },
              1 + Math.random() * 4,
            )
          }
          try {
            const res = await refreshAt(target, presented)
            const text = await res.text()
            if (res.status !== 200) {
              failures.push(
                `${target === victim ? 'victim' : 'survivor'} answered ${res.status}: ${text}`,
              )
              return
            }
            chain.token = (JSON.parse(text) as TokenPairBody).refresh_token
            chain.refreshes += 1
          } catch (error) {
            // The connection died with the process: the response, if there was to be one, is lost.
            if (target === victim && killed) {
              chain.lost = presented
              return
            }
            throw error
          }
        }
      }

      const load = Promise.all(chains.map((chain, i) => drive(chain, i)))
      load.catch(() => {}) // awaited below; a chain failing early must not go unhandled meanwhile
      // Load first: at least LOAD_BEFORE_KILL_MS, and until every chain could have refreshed
      // once (a loaded machine is slower), so the kill lands in the middle of real traffic.
      const loadedBy = Date.now() + 30_000
      await new Promise((resolve) => setTimeout(resolve, LOAD_BEFORE_KILL_MS))
      while (chains.reduce((sum, c) => sum + c.refreshes, 0) <= CHAINS && Date.now() < loadedBy) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      armed = true
      await Promise.race([victimKilled, load])
      const refreshesBeforeKill = chains.reduce((sum, c) => sum + c.refreshes, 0)
      await new Promise((resolve) => setTimeout(resolve, LOAD_AFTER_KILL_MS))
      stopping = true
      await load
      expect(killed).toBe(true)
      const refreshesAfterKill =
        chains.reduce((sum, c) => sum + c.refreshes, 0) - refreshesBeforeKill

      expect(await victim.exited).toBeNull() // ended by the signal, not by an exit
      expect(failures).toEqual([])
      expect(refreshesBeforeKill).toBeGreaterThan(CHAINS)
      // Chains that were not waiting on the victim went on, on the survivor alone.
      expect(refreshesAfterKill).toBeGreaterThan(0)

      await backendsGone(dialect, direct.db, `${tag}-victim`)
      expect(await invariantViolations(direct.db)).toEqual(NO_VIOLATIONS)

      // A chain whose refresh was in flight when the process died finds its last token in one of
      // exactly two states: still `active` (the transaction never committed: the claim rolled
      // back with the process, or the request never arrived), or `rotated` with exactly one
      // `active` child (it committed, only the response was lost). Never rotated without a child.
      const outcomes = { rolledBack: 0, committedButLost: 0 }
      for (const chain of chains.filter((c) => c.lost !== undefined)) {
        const token = await direct.db
          .selectFrom('refresh_tokens')
          .select(['id', 'status'])
          .where('token_hash', '=', hashRefreshToken(chain.lost!))
          .executeTakeFirstOrThrow()
        const children = await direct.db
          .selectFrom('refresh_tokens')
          .select(['status', 'token_hash'])
          .where('parent_id', '=', token.id)
          .execute()
        if (token.status === 'active') {
          expect(children).toEqual([])
          outcomes.rolledBack += 1
          // The client retries against the survivor, and it simply works.
          await bodyOf(await refreshAt(survivor, chain.lost!), 200)
        } else {
          expect(token.status).toBe('rotated')
          expect(children.map((c) => c.status)).toEqual(['active'])
          outcomes.committedButLost += 1
          // Inside the reuse interval the retry gets the answer the victim committed and never
          // sent: the same child, nothing new issued (in strict mode it would be reuse).
          const retried = await bodyOf<TokenPairBody>(await refreshAt(survivor, chain.lost!), 200)
          expect(hashRefreshToken(retried.refresh_token)).toBe(children[0]!.token_hash)
          await bodyOf(await refreshAt(survivor, retried.refresh_token), 200)
        }
      }
      console.info(
        `[crash ${name}] ${refreshesBeforeKill} refreshes before kill -9, ` +
          `${refreshesAfterKill} after; in flight to the victim: ` +
          `${outcomes.rolledBack} not committed, ${outcomes.committedButLost} committed`,
      )

      // The survivor answers logins and refreshes, and the retries above kept the rules.
      const pair = await registerAndLogin(survivor)
      await bodyOf(await refreshAt(survivor, pair.refresh_token), 200)
      await bodyOf(await survivor.request('/ready'), 200)
      expect(await invariantViolations(direct.db)).toEqual(NO_VIOLATIONS)
    }, 60_000)
  })
}
