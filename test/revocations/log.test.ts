/**
 * The revocation log (docs/revocation.md): every event that ends access writes one row in the
 * transaction of the change, cursors come in commit order so concurrent writers never make a
 * reader skip one, and rows older than the retention are pruned.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setDisabled } from '../../src/accounts/accounts.js'
import { inTransaction } from '../../src/db/transaction.js'
import {
  type RevocationEntry,
  readRevocations,
  recordRevocation,
  revocationRetentionMs,
} from '../../src/revocations/log.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { claimsOf, logRows, pull } from '../support/revocations.js'
import {
  login,
  PASSWORD,
  refresh,
  refreshPair,
  register,
  registerAndLogin,
} from '../support/users.js'

for (const dialect of dialects()) {
  describe(`the revocation log [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      // Strict refresh (no reuse interval): a spent token presented again is reuse at once.
      app = await makeTestApp({ dialect, env: { REFRESH_REUSE_INTERVAL: '0' } })
    })
    afterAll(() => app.close())

    /** Rows written by `action`, as kind:subject. */
    async function written(action: () => Promise<unknown>): Promise<string[]> {
      const before = (await logRows(app)).length
      await action()
      return (await logRows(app)).slice(before).map((row) => `${row.kind}:${row.subject}`)
    }

    it('logout writes one entry for the session, and a second logout none', async () => {
      const { tokens } = await registerAndLogin(app)
      const logout = () =>
        app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      expect(await written(logout)).toEqual([`session:${claimsOf(tokens.access_token).sid}`])
      expect(await written(logout)).toEqual([])
    })

    it('logout-all writes one entry per live session', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const second = await login(app, email)
      const ended = await registerAndLogin(app)
      await app.request('/v1/user/auth/logout', {
        json: { refresh_token: ended.tokens.refresh_token },
      })
      const rows = await written(() =>
        app.request('/v1/user/auth/logout-all', { method: 'POST', token: tokens.access_token }),
      )
      expect(rows.sort()).toEqual(
        [tokens, second].map((t) => `session:${claimsOf(t.access_token).sid}`).sort(),
      )
    })

    it('deleting a session writes its entry', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const other = await login(app, email)
      const sid = claimsOf(other.access_token).sid
      expect(
        await written(() =>
          app.request(`/v1/user/sessions/${sid}`, { method: 'DELETE', token: tokens.access_token }),
        ),
      ).toEqual([`session:${sid}`])
    })

    it('refresh-token reuse writes the family entry, although the request fails', async () => {
      const { tokens } = await registerAndLogin(app)
      await refreshPair(app, tokens.refresh_token)
      const rows = await written(async () => {
        expect((await refresh(app, tokens.refresh_token)).status).toBe(401)
      })
      expect(rows).toEqual([`session:${claimsOf(tokens.access_token).sid}`])
    })

    it('a password change writes an entry for every other session, not its own', async () => {
      const { email, tokens } = await registerAndLogin(app)
      const other = await login(app, email)
      const rows = await written(() =>
        app.request('/v1/user/password', {
          json: { current_password: PASSWORD, new_password: `${PASSWORD} and more` },
          token: tokens.access_token,
        }),
      )
      expect(rows).toEqual([`session:${claimsOf(other.access_token).sid}`])
    })

    it('a disable writes the sessions and the user, in one transaction', async () => {
      const { user, tokens } = await registerAndLogin(app)
      const rows = await written(() => setDisabled(app.server.tessera, user.id, true))
      expect(rows).toEqual([`session:${claimsOf(tokens.access_token).sid}`, `user:${user.id}`])
      const [session, disabled] = (await logRows(app)).slice(-2)
      expect(disabled!.seq).toBe(session!.seq + 1)
    })

    it('commits and rolls back with the change; a rollback gives its cursor back', async () => {
      const { db, clock } = app.server.tessera
      const before = (await logRows(app)).at(-1)?.seq ?? 0
      await expect(
        inTransaction(db, async (tx) => {
          await recordRevocation(tx, clock, { kind: 'key', kid: 'k4.pid.rolled-back' })
          throw new Error('the change fails')
        }),
      ).rejects.toThrow('the change fails')
      expect((await logRows(app)).at(-1)?.seq ?? 0).toBe(before)
      await recordRevocation(db, clock, { kind: 'key', kid: 'k4.pid.committed' })
      const last = (await logRows(app)).at(-1)!
      expect([last.seq, last.kind, last.subject]).toEqual([before + 1, 'key', 'k4.pid.committed'])
    })

    it('concurrent writers never make a reader skip a cursor', async () => {
      // Writers hold their transaction open for a while after taking cursors, in random order,
      // while a reader pages with `seq > cursor` as verifiers do. Had cursors been handed out
      // outside commit order (a sequence), a late commit of a low cursor would be skipped.
      const { db, clock } = app.server.tessera
      const start = (await logRows(app)).at(-1)?.seq ?? 0
      const WRITERS = 40
      let done = false
      const seen: number[] = []
      const reader = (async () => {
        let cursor = start
        for (;;) {
          // Only a read that began after every writer committed may end the loop.
          const last = done
          const rows: RevocationEntry[] = await readRevocations(db, cursor, 1000)
          for (const row of rows) seen.push(row.seq)
          cursor = rows.at(-1)?.seq ?? cursor
          if (last && rows.length === 0) break
          await new Promise((resolve) => setTimeout(resolve, 1))
        }
      })()
      await Promise.all(
        Array.from({ length: WRITERS }, (_, i) =>
          inTransaction(db, async (tx) => {
            await recordRevocation(tx, clock, [
              { kind: 'session', sessionId: `writer-${i}-a` },
              { kind: 'session', sessionId: `writer-${i}-b` },
            ])
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 15))
          }),
        ),
      )
      done = true
      await reader
      expect(seen).toEqual(Array.from({ length: WRITERS * 2 }, (_, i) => start + i + 1))
      // Each transaction's two entries are adjacent: cursors are taken per transaction.
      const rows = (await logRows(app)).filter((row) => row.subject.startsWith('writer-'))
      for (let i = 0; i < rows.length; i += 2) {
        expect(rows[i]!.subject.replace(/-a$/, '')).toBe(rows[i + 1]!.subject.replace(/-b$/, ''))
      }
    })
  })

  describe(`pruning [${dialect}]`, () => {
    it('drops entries older than the retention from the table, memory and feed', async () => {
      const app = await makeTestApp({
        dialect,
        env: { ACCESS_TOKEN_TTL: '120', JOB_TOKEN_MAX_TTL: '0' },
      })
      try {
        const { revocations, config } = app.server.tessera
        const clock = app.clock
        // The retention: the longest lifetime (ACCESS_TOKEN_TTL, no job tokens here; or
        // KEYS_MAX_AGE's 300 s for a
        // key still in a cached key set) plus a minute of skew.
        expect(revocationRetentionMs(config)).toBe(360_000)
        const { email } = await register(app)
        const old = await login(app, email)
        await app.request('/v1/user/auth/logout', { json: { refresh_token: old.refresh_token } })
        await revocations.sync()
        expect(revocations.size()).toBe(1)

        clock.advance(revocationRetentionMs(config) - 1_000)
        await revocations.sync()
        expect((await logRows(app)).length).toBe(1)
        // Past the retention, and past the minute between two deletions of old rows.
        clock.advance(61_000)
        const recent = await login(app, email)
        await app.request('/v1/user/auth/logout', { json: { refresh_token: recent.refresh_token } })
        await revocations.sync()
        const rows = await logRows(app)
        expect(rows.map((row) => row.subject)).toEqual([claimsOf(recent.access_token).sid])
        expect(revocations.size()).toBe(1)
        const page = await pull(app, 0)
        expect(page.entries.map((e) => e.seq)).toEqual([rows[0]!.seq])
        // The pruned cursor is not handed out again.
        expect(rows[0]!.seq).toBe(2)
      } finally {
        await app.close()
      }
    })
  })
}
