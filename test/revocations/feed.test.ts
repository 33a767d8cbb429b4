/**
 * The revocation feed over HTTP (docs/revocation.md, "The feed"): `GET /v1/revocations` pages of
 * signed documents, and `GET /v1/revocations/stream` with resume, heartbeats, checkpoints and a
 * bound on its clients.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { recordRevocation, revocationHead } from '../../src/revocations/log.js'
import { revocationHash } from '../../src/verify/revocation-list.js'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'
import { claimsOf, nextDocument, openDocument, openStream, pull } from '../support/revocations.js'
import { expectProblem, registerAndLogin } from '../support/users.js'

const HEARTBEAT_MS = 300

for (const dialect of dialects()) {
  describe(`GET /v1/revocations [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app.close())

    const record = (n: number, prefix: string) =>
      recordRevocation(
        app.server.tessera.db,
        app.server.tessera.clock,
        Array.from({ length: n }, (_, i) => ({
          kind: 'session' as const,
          sessionId: `${prefix}-${i}`,
        })),
      )

    it('a signed page, cacheable for a second, naming sessions and users by hashes', async () => {
      const { user, tokens } = await registerAndLogin(app)
      const { sid } = claimsOf(tokens.access_token)
      await app.request('/v1/user/auth/logout', { json: { refresh_token: tokens.refresh_token } })
      await recordRevocation(app.server.tessera.db, app.server.tessera.clock, {
        kind: 'user',
        userId: user.id,
      })
      const res = await app.request('/v1/revocations?after=0')
      expect(res.status).toBe(200)
      expect(res.headers.get('cache-control')).toBe('public, max-age=1')
      const text = await res.text()
      expect(text).not.toContain(sid)
      expect(text).not.toContain(user.id)
      const doc = await openDocument(app, (JSON.parse(text) as { document: string }).document)
      const at = Math.ceil(app.clock() / 1000)
      // `ttl`: the longest token lifetime, a job token's JOB_TOKEN_MAX_TTL (24 h) by default.
      expect(doc).toMatchObject({ after: 0, next: 2, more: false, ttl: 86_400 })
      expect(doc.entries).toEqual([
        { seq: 1, sid: revocationHash('sid', sid), at: expect.any(Number) },
        { seq: 2, sub: revocationHash('sub', user.id), at },
      ])
      expect(doc.expiresAt - doc.issuedAt).toBe(60_000)
      // Nothing after the head: an empty page that says where it stands.
      expect(await pull(app, 2)).toMatchObject({ after: 2, next: 2, more: false, entries: [] })
    })

    it('pages of at most 1000 entries, `more` while there are more', async () => {
      const head = (await pull(app, 0)).next
      await record(2100, 'paging')
      const pages = []
      let cursor = head
      for (;;) {
        const page = await pull(app, cursor)
        pages.push(page)
        expect(page.after).toBe(cursor)
        cursor = page.next
        if (!page.more) break
      }
      expect(pages.map((p) => p.entries.length)).toEqual([1000, 1000, 100])
      expect(pages.flatMap((p) => p.entries.map((e) => e.seq))).toEqual(
        Array.from({ length: 2100 }, (_, i) => head + i + 1),
      )
    })

    it('a cursor beyond the head (a log restored from a backup) starts again from 0', async () => {
      const head = await revocationHead(app.server.tessera.db)
      expect(head).toBeGreaterThan(0)
      const page = await pull(app, head + 1000)
      expect(page.after).toBe(0)
      expect(page.entries[0]!.seq).toBe(1)
    })

    it('refuses a cursor that is not a whole number', async () => {
      for (const after of [
        '-1',
        '1.5',
        'abc',
        '',
        '1e3',
        '12345678901234567',
        '9007199254740993',
      ]) {
        const res = await app.request(`/v1/revocations?after=${encodeURIComponent(after)}`)
        const body = await expectProblem(res, 400, 'validation_failed')
        expect(body.detail).toMatch(/^after: /)
      }
    })
  })

  describe(`GET /v1/revocations/stream [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({
        dialect,
        env: { REVOCATION_STREAM_MAX_CLIENTS: '2' },
        revocationHeartbeatMs: HEARTBEAT_MS,
      })
    })
    afterAll(() => app.close())
    // Each test starts with every slot free (a closed stream's slot is freed once the server
    // notices the connection is gone).
    afterEach(async () => {
      await expect
        .poll(() => app.server.tessera.revocations.streams(), { timeout: 2_000, interval: 10 })
        .toBe(0)
    })

    const revoke = (id: string) =>
      recordRevocation(app.server.tessera.db, app.server.tessera.clock, {
        kind: 'session',
        sessionId: id,
      })

    it('sends the backlog at once, then each new entry, with the cursor as event id', async () => {
      await revoke('stream-1')
      await revoke('stream-2')
      const stream = await openStream(app.url)
      try {
        expect(stream.res.headers.get('content-type')).toBe('text/event-stream')
        expect(stream.res.headers.get('cache-control')).toBe('no-store')
        expect(stream.res.headers.get('x-accel-buffering')).toBe('no')
        const backlog = await nextDocument(app, stream)
        expect(backlog).toMatchObject({ after: 0, next: 2, id: '2' })
        expect(backlog.entries.map((e) => e.seq)).toEqual([1, 2])
        await revoke('stream-3')
        const live = await nextDocument(app, stream)
        expect(live).toMatchObject({ after: 2, next: 3, id: '3' })
        expect(live.entries).toEqual([
          { seq: 3, sid: revocationHash('sid', 'stream-3'), at: expect.any(Number) },
        ])
      } finally {
        stream.close()
      }
    })

    it('resumes from Last-Event-ID (or ?after=), missing and repeating nothing', async () => {
      const first = await openStream(app.url)
      const head = (await nextDocument(app, first)).next
      first.close()
      // Written while no stream was open.
      await revoke('missed-1')
      await revoke('missed-2')
      const resumed = await openStream(app.url, '?after=0', { 'last-event-id': String(head) })
      const byQuery = await openStream(app.url, `?after=${head + 1}`)
      try {
        const doc = await nextDocument(app, resumed)
        expect(doc.after).toBe(head)
        expect(doc.entries.map((e) => e.seq)).toEqual([head + 1, head + 2])
        expect((await nextDocument(app, byQuery)).entries.map((e) => e.seq)).toEqual([head + 2])
      } finally {
        resumed.close()
        byQuery.close()
      }
    })

    it('heartbeats when idle, and a signed checkpoint every second heartbeat', async () => {
      const stream = await openStream(app.url)
      try {
        const start = await nextDocument(app, stream)
        const seen: string[] = []
        while (seen.filter((e) => e === 'revocations').length < 2) {
          seen.push((await stream.next(HEARTBEAT_MS * 5)).event)
        }
        expect(seen).toEqual(['comment', 'revocations', 'comment', 'revocations'])
        const checkpoint = await nextDocument(app, stream)
        expect(checkpoint).toMatchObject({ after: start.next, next: start.next, entries: [] })
      } finally {
        stream.close()
      }
    })

    it('refuses a bad cursor with 400', async () => {
      for (const [query, headers] of [
        ['?after=x', {}],
        ['', { 'last-event-id': '-4' }],
        ['', { 'last-event-id': '1'.repeat(17) }],
      ] as const) {
        const stream = await openStream(app.url, query, headers)
        const body = await expectProblem(stream.res, 400, 'validation_failed')
        expect(body.detail).toMatch(/^(after|Last-Event-ID): /)
      }
    })

    it('bounds its clients: 503 with Retry-After when full, a slot once one leaves', async () => {
      const a = await openStream(app.url)
      const b = await openStream(app.url)
      try {
        await nextDocument(app, a)
        await nextDocument(app, b)
        const refused = await openStream(app.url)
        expect(refused.res.headers.get('retry-after')).toBe('5')
        await expectProblem(refused.res, 503, 'service_unavailable')
        b.close()
        await expect
          .poll(() => app.server.tessera.revocations.streams(), { timeout: 2_000, interval: 20 })
          .toBe(1)
        const c = await openStream(app.url)
        expect(c.res.status).toBe(200)
        c.close()
      } finally {
        a.close()
        b.close()
      }
    })
  })

  describe(`the stream and shutdown [${dialect}]`, () => {
    it('open streams end when the server closes, and do not hold it open', async () => {
      const app = await makeTestApp({ dialect })
      const stream = await openStream(app.url)
      await nextDocument(app, stream)
      // Without ending the streams first, this would wait for the client forever.
      await app.close()
      await expect(stream.next(1_000)).rejects.toThrow()
    })
  })
}
