import { expect } from 'vitest'
import type { TestApp } from './app.js'
import { Browser, TESSERA_TEST_ISSUER } from './oidc.js'

/**
 * A browser of Tessera's pages over plain HTTP, for the tests that need no rendering: cookies
 * kept (oidc.ts `Browser`), redirects left to the test, forms posted as a browser posts them
 * (`application/x-www-form-urlencoded`, `Origin` of the page, `Accept: text/html`). The app's
 * TESSERA_ISSUER is TESSERA_TEST_ISSUER, which the Browser maps to the app's loopback URL.
 */
export class PageBrowser {
  readonly browser: Browser
  readonly host: string

  constructor(readonly app: TestApp) {
    this.browser = new Browser(app.url)
    this.host = new URL(app.url).host
  }

  /** A page request as a browser's navigation sends it. */
  get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.browser.fetch(TESSERA_TEST_ISSUER + path, {
      headers: { accept: 'text/html,application/xhtml+xml', ...headers },
    })
  }

  /** A form post from a page of `origin` (Tessera's own by default). */
  post(
    path: string,
    fields: Record<string, string>,
    options: { origin?: string | null; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const origin = options.origin === undefined ? TESSERA_TEST_ISSUER : options.origin
    return this.browser.fetch(TESSERA_TEST_ISSUER + path, {
      method: 'POST',
      headers: {
        accept: 'text/html,application/xhtml+xml',
        'content-type': 'application/x-www-form-urlencoded',
        ...(origin === null ? {} : { origin }),
        ...options.headers,
      },
      body: new URLSearchParams(fields).toString(),
    })
  }

  /** The form token of the page at `path` (its first `csrf` field). */
  async token(path: string): Promise<string> {
    const res = await this.get(path)
    const html = await res.text()
    expect(res.status, html.slice(0, 500)).toBe(200)
    return formToken(html)
  }

  cookie(name: string): string | undefined {
    return this.browser.cookie(this.host, name)
  }

  /** Signs in with the sign-in form; the answer (a 303) is returned. */
  async signIn(email: string, password: string, fields: Record<string, string> = {}) {
    const csrf = await this.token('/login')
    return this.post('/login', { csrf, email, password, ...fields })
  }
}

/** The value of the first `csrf` hidden field of a page. */
export function formToken(html: string): string {
  const match = /<input type="hidden" name="csrf" value="([^"]+)"/.exec(html)
  if (match === null) throw new Error(`no csrf field in ${html.slice(0, 300)}`)
  return match[1]!
}

/** A redirect's target, relative to Tessera when it is on Tessera (`/account?done=...`). */
export function locationOf(res: Response): string {
  expect([301, 302, 303, 307, 308], `status ${res.status}`).toContain(res.status)
  const location = res.headers.get('location')!
  return location.startsWith(TESSERA_TEST_ISSUER)
    ? location.slice(TESSERA_TEST_ISSUER.length)
    : location
}

/** The attributes of the Set-Cookie line for `name`, lower-cased names, as a map. */
export function setCookieAttributes(res: Response, name: string): Map<string, string> | undefined {
  const line = res.headers.getSetCookie().find((l) => l.startsWith(`${name}=`))
  if (line === undefined) return undefined
  const [pair, ...attributes] = line.split(';').map((part) => part.trim())
  const map = new Map<string, string>([['value', pair!.slice(name.length + 1)]])
  for (const attribute of attributes) {
    const eq = attribute.indexOf('=')
    if (eq === -1) map.set(attribute.toLowerCase(), '')
    else map.set(attribute.slice(0, eq).toLowerCase(), attribute.slice(eq + 1))
  }
  return map
}
