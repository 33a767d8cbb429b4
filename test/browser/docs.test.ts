/**
 * `/docs` offline (README, "Routes"): in a real Chromium with every request to another origin
 * aborted and recorded, the page renders the reference from openapi.yaml, served with the
 * renderer's files by Tessera itself, under its own CSP without a single violation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { chromiumMissing, launchBrowser, type TestBrowser } from '../support/browser.js'

describe.skipIf(chromiumMissing() !== undefined)('/docs in Chromium, offline [sqlite]', () => {
  let app: TestApp
  let browser: TestBrowser

  beforeAll(async () => {
    // The issuer is where the server really is, unlike the document's default address.
    ;[app, browser] = await Promise.all([makeTestApp({ issuerHost: '127.0.0.1' }), launchBrowser()])
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await app?.close()
  })

  it('renders the reference with nothing fetched from outside and no CSP violation', async () => {
    const { page, context, requests } = await browser.newPage()
    const origin = new URL(app.url).origin
    const outside: string[] = []
    await context.route('**/*', (route) => {
      const url = route.request().url()
      if (new URL(url).origin === origin) return route.continue()
      outside.push(url)
      return route.abort()
    })
    const errors: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text())
    })
    page.on('pageerror', (error) => errors.push(String(error)))
    // Violations of the page's policy, however the browser would report them.
    // (A string: the test compiles without the DOM library.)
    await page.addInitScript({
      content: `window.violations = []
        document.addEventListener('securitypolicyviolation', (event) =>
          window.violations.push(event.effectiveDirective + ' ' + event.blockedURI))`,
    })

    const response = await page.goto(`${app.url}/docs`)
    expect(response?.status()).toBe(200)
    // Text of openapi.yaml (its description, summaries of the first tag, which is open): only
    // the rendered reference shows it.
    for (const summary of [
      'Tessera authenticates users with email and password',
      'Prometheus metrics',
    ]) {
      // Generous: the machine running the suite may be busy; the page has no other work to wait on.
      await page.getByText(summary).first().waitFor({ state: 'visible', timeout: 60_000 })
    }
    // The server it names is this one (TESSERA_ISSUER), not the document's default.
    await page.getByText(app.url).first().waitFor({ timeout: 30_000 })
    expect(await page.getByText('localhost:8000').count()).toBe(0)

    const violations = await page.evaluate('window.violations')
    expect(violations).toEqual([])
    expect(errors.filter((e) => /content security policy|refused to/i.test(e))).toEqual([])
    expect(errors).toEqual([])
    expect(outside).toEqual([])
    expect(requests.length).toBeGreaterThan(2)
    expect(requests.every((url) => url.startsWith(`${origin}/`))).toBe(true)
    // The module build and its chunks came from the versioned assets path.
    expect(requests.some((url) => /\/docs\/assets\/[\d.]+\/standalone\.esm\.js$/.test(url))).toBe(
      true,
    )
    expect(requests.some((url) => /\/docs\/assets\/[\d.]+\/chunks\//.test(url))).toBe(true)
  }, 120_000)
})
