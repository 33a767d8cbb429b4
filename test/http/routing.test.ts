/**
 * Routing: every route of the app is a shape Hono's RegExpRouter takes, so Hono's default router
 * settles on it and not on its slower TrieRouter fallback for every request (docs/performance.md,
 * "Routing"); and the two routes folded for it still answer as before. SQLite only.
 */

import { RegExpRouter } from 'hono/router/reg-exp-router'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/http/app.js'
import { makeTestApp, type TestApp } from '../support/app.js'

describe('routing [sqlite]', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await makeTestApp({ dialect: 'sqlite' })
  })
  afterAll(() => app.close())

  it("every route fits Hono's RegExpRouter", async () => {
    const hono = createApp(app.server.tessera)
    const router = new RegExpRouter<unknown>()
    const refused: string[] = []
    for (const route of hono.routes) {
      try {
        router.add(route.method, route.path, route.handler)
      } catch {
        refused.push(`${route.method} ${route.path}`)
      }
    }
    expect(refused).toEqual([])
    // And the app's own router chose it.
    expect((await hono.request('/health')).status).toBe(200)
    expect((hono.router as unknown as { activeRouter: { name: string } }).activeRouter.name).toBe(
      'RegExpRouter',
    )
  })

  it('/link/done is its page, not a ticket', async () => {
    const res = await app.request('/link/done?linked=cilogon')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/html/)
  })

  it('/docs/assets/ answers only a bundle file of the served version', async () => {
    for (const path of [
      '/docs/assets/0.0.1/standalone.js',
      '/docs/assets/x/chunks/',
      '/docs/assets/x/chunks/a/b.js',
      '/docs/assets/x/..%2fpackage.json',
    ]) {
      const res = await app.request(path)
      expect(res.status, path).toBe(404)
      expect(((await res.json()) as { code: string }).code, path).toBe('not_found')
    }
  })
})
