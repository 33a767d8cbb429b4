/**
 * The pages' part of the contract test (contract.test.ts calls `pagesContract()` among its
 * operations, so that the coverage check there sees these checks): every documented status of
 * every page route, provoked through a real browser-like client and checked against
 * openapi.yaml.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { registerAccount, setDisabled } from '../../src/accounts/accounts.js'
import { outboxDirectory } from '../../src/mail/transport.js'
import type { TestApp } from '../support/app.js'
import { startDevice } from '../support/device.js'
import { type Federation, startFederation } from '../support/federation.js'
import { outboxResetCode } from '../support/mail.js'
import { enrolTotp, totpCode } from '../support/mfa.js'
import { CLIENT_REDIRECT_URI, clientPkce, TESSERA_TEST_ISSUER } from '../support/oidc.js'
import { checkAgainstOpenApi, checkRequestBody } from '../support/openapi.js'
import { outboxToken } from '../support/outbox.js'
import { formToken, PageBrowser } from '../support/pages.js'
import { login, PASSWORD, register, uniqueEmail, uniqueSubject } from '../support/users.js'
import { SoftwareAuthenticator } from '../support/webauthn.js'

const FORM = 'application/x-www-form-urlencoded'
const OVERSIZED = { padding: 'x'.repeat(70 * 1024) }
const NO_CLIENT = { ip: null, userAgent: null }

export function pagesContract(): void {
  let federation: Federation
  /** Rate limits off; GitLab's issuer cannot be reached (503 when a flow starts). */
  let pages: TestApp
  /** One login attempt per account, registration and federated request per window. */
  let strict: TestApp
  /** REQUIRE_VERIFIED_EMAIL on. */
  let verifying: TestApp

  beforeAll(async () => {
    federation = await startFederation()
    ;[pages, strict, verifying] = await Promise.all([
      federation.app({
        env: {
          OAUTH_GITLAB_ISSUER: 'http://127.0.0.1:1',
          RATE_LIMIT_REGISTER_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_IP: '0',
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '0',
        },
      }),
      federation.app({
        env: {
          RATE_LIMIT_LOGIN_PER_ACCOUNT: '1',
          RATE_LIMIT_REGISTER_PER_IP: '1',
          RATE_LIMIT_OAUTH_PER_IP: '1',
          RATE_LIMIT_USER_CODE_PER_SESSION: '1',
          RATE_LIMIT_PASSWORD_RESET_PER_IP: '1',
          RATE_LIMIT_MFA_PER_ACCOUNT: '1',
        },
      }),
      federation.app({ env: { REQUIRE_VERIFIED_EMAIL: 'true' } }),
    ])
  }, 60_000)
  afterAll(() => federation?.close())

  /** A response checked against `method template` of openapi.yaml; its status and text. */
  async function check(method: string, template: string, res: Response) {
    const checked = await checkAgainstOpenApi(method, template, res)
    return { status: checked.status, location: res.headers.get('location') }
  }

  /** A form the server should accept: its fields must satisfy the documented schema. */
  async function accepted(
    browser: PageBrowser,
    path: string,
    fields: Record<string, string>,
    template = path,
  ) {
    await checkRequestBody('POST', template, FORM, fields)
    return check('POST', template, await browser.post(path, fields))
  }

  /** The refusals every form shares: another origin (403), too large (413), not a form (415). */
  async function formRefusals(browser: PageBrowser, path: string, fields: Record<string, string>) {
    const forged = await browser.post(path, fields, { origin: 'http://evil.example' })
    expect((await check('POST', path, forged)).status).toBe(403)
    const large = await browser.post(path, { ...fields, ...OVERSIZED })
    expect((await check('POST', path, large)).status).toBe(413)
    const plain = await browser.post(path, fields, { headers: { 'content-type': 'text/plain' } })
    expect((await check('POST', path, plain)).status).toBe(415)
  }

  async function signedIn(app = pages) {
    // Not through the API's registration: the strict app allows one a window.
    const email = uniqueEmail('page-contract')
    const user = await registerAccount(app.server.tessera, { email, password: PASSWORD }, NO_CLIENT)
    const browser = new PageBrowser(app)
    expect((await browser.signIn(email, PASSWORD)).status).toBe(303)
    const csrf = formToken(await (await browser.get('/account')).text())
    return { browser, email, user, csrf }
  }

  it('the two-step verification forms of the account page', async () => {
    const start = '/account/mfa/totp'
    const confirm = '/account/mfa/totp/confirm'
    const codes = '/account/mfa/recovery-codes'
    const remove = '/account/mfa/totp/remove'
    const secretOf = (html: string) =>
      /data-totp-secret="">([A-Z2-7 ]+)</.exec(html)![1]!.replaceAll(' ', '')
    const { browser, csrf } = await signedIn()
    const anonymous = new PageBrowser(pages)
    for (const path of [start, confirm, codes, remove]) {
      await formRefusals(browser, path, { csrf, code: '123456' })
      const away = await anonymous.post(path, { csrf, code: '123456' })
      expect((await check('POST', path, away)).status).toBe(303)
      const long = await browser.post(path, {
        csrf,
        code: '1'.repeat(17),
        password: 'x'.repeat(5000),
      })
      expect((await check('POST', path, long)).status).toBe(400)
    }
    const none = await browser.post(codes, { csrf })
    expect((await check('POST', codes, none)).status).toBe(400)
    const started = await browser.post(start, { csrf })
    const secret = secretOf(await started.clone().text())
    expect((await check('POST', start, started)).status).toBe(200)
    const wrong = totpCode(pages, secret) === '123456' ? '654321' : '123456'
    expect(
      (await check('POST', confirm, await browser.post(confirm, { csrf, code: wrong }))).status,
    ).toBe(400)
    expect((await accepted(browser, confirm, { csrf, code: totpCode(pages, secret) })).status).toBe(
      200,
    )
    expect((await check('POST', start, await browser.post(start, { csrf }))).status).toBe(409)
    expect((await accepted(browser, codes, { csrf })).status).toBe(200)
    expect(
      (await check('POST', remove, await browser.post(remove, { csrf, code: wrong }))).status,
    ).toBe(400)
    expect((await accepted(browser, remove, { csrf, code: '' })).status).toBe(303)
    expect((await check('POST', remove, await browser.post(remove, { csrf }))).status).toBe(400)

    // Not recent: 401 without a password, and with a wrong one; 429 past the password budget or
    // past the wrong codes' budget (one each on the strict app).
    const enrolled = async () => {
      const who = await signedIn(strict)
      const html = await (await who.browser.post(start, { csrf: who.csrf })).text()
      const key = secretOf(html)
      const ok = await who.browser.post(confirm, { csrf: who.csrf, code: totpCode(strict, key) })
      expect(ok.status).toBe(200)
      return { ...who, key }
    }
    const a = await enrolled()
    const b = await signedIn(strict)
    const bStarted = await b.browser.post(start, { csrf: b.csrf })
    const bKey = secretOf(await bStarted.text())
    const c = await enrolled()
    strict.clock.advance(301_000)
    const bad = { password: 'not-the-password' }
    expect(
      (
        await check(
          'POST',
          confirm,
          await b.browser.post(confirm, { csrf: b.csrf, code: totpCode(strict, bKey) }),
        )
      ).status,
    ).toBe(401)
    expect((await check('POST', start, await b.browser.post(start, { csrf: b.csrf }))).status).toBe(
      401,
    )
    expect(
      (await check('POST', start, await b.browser.post(start, { csrf: b.csrf, ...bad }))).status,
    ).toBe(401)
    expect(
      (await check('POST', start, await b.browser.post(start, { csrf: b.csrf, ...bad }))).status,
    ).toBe(429)
    expect((await check('POST', codes, await a.browser.post(codes, { csrf: a.csrf }))).status).toBe(
      401,
    )
    expect(
      (await check('POST', codes, await a.browser.post(codes, { csrf: a.csrf, ...bad }))).status,
    ).toBe(401)
    expect(
      (await check('POST', codes, await a.browser.post(codes, { csrf: a.csrf, ...bad }))).status,
    ).toBe(429)
    expect(
      (await check('POST', remove, await c.browser.post(remove, { csrf: c.csrf }))).status,
    ).toBe(401)
    const cWrong = totpCode(strict, c.key) === '123456' ? '654321' : '123456'
    await c.browser.post(remove, { csrf: c.csrf, code: cWrong })
    expect(
      (await check('POST', remove, await c.browser.post(remove, { csrf: c.csrf, code: cWrong })))
        .status,
    ).toBe(429)
    const d = await signedIn(strict)
    const dKey = secretOf(await (await d.browser.post(start, { csrf: d.csrf })).text())
    const dWrong = totpCode(strict, dKey) === '123456' ? '654321' : '123456'
    await d.browser.post(confirm, { csrf: d.csrf, code: dWrong })
    expect(
      (await check('POST', confirm, await d.browser.post(confirm, { csrf: d.csrf, code: dWrong })))
        .status,
    ).toBe(429)
  })

  it('the passkey forms of the sign-in and account pages', async () => {
    const authenticator = new SoftwareAuthenticator(TESSERA_TEST_ISSUER)
    const { browser, csrf, email } = await signedIn()
    // Once the passkey is added, a password login needs it as a second factor.
    const apiToken = (await login(pages, email)).access_token
    const optionsAt = async (who: PageBrowser, path: string, fields: Record<string, string>) => {
      await checkRequestBody('POST', path, FORM, fields)
      const res = await who.post(path, fields, { headers: { accept: '*/*' } })
      expect((await check('POST', path, res)).status).toBe(200)
      return (await res.json()) as { options: never; challenge: string }
    }
    const begun = await optionsAt(browser, '/account/passkeys/options', { csrf })
    const add = {
      csrf,
      name: 'Key',
      challenge: begun.challenge,
      response: JSON.stringify(authenticator.register(begun.options)),
    }
    await formRefusals(browser, '/account/passkeys/options', { csrf })
    await formRefusals(browser, '/account/passkeys', add)
    const bad = await browser.post('/account/passkeys', { ...add, response: 'not json' })
    expect((await check('POST', '/account/passkeys', bad)).status).toBe(400)
    expect((await accepted(browser, '/account/passkeys', add)).status).toBe(303)
    const spent = await browser.post('/account/passkeys', add)
    expect((await check('POST', '/account/passkeys', spent)).status).toBe(400)
    const next = await optionsAt(browser, '/account/passkeys/options', { csrf })
    const foreign = new SoftwareAuthenticator('http://evil.example')
    const refused = await browser.post('/account/passkeys', {
      ...add,
      challenge: next.challenge,
      response: JSON.stringify(foreign.register(next.options)),
    })
    expect((await check('POST', '/account/passkeys', refused)).status).toBe(401)
    const anonymous = new PageBrowser(pages)
    const away = await anonymous.post('/account/passkeys/options', { csrf })
    expect((await check('POST', '/account/passkeys/options', away)).status).toBe(303)
    expect(
      (await check('POST', '/account/passkeys', await anonymous.post('/account/passkeys', add)))
        .status,
    ).toBe(303)

    // Sign in with it.
    const token = formToken(await (await anonymous.get('/login')).text())
    const signIn = await optionsAt(anonymous, '/login/passkey/options', { csrf: token })
    const fields = {
      csrf: token,
      challenge: signIn.challenge,
      response: JSON.stringify(authenticator.assert(signIn.options)),
    }
    await formRefusals(anonymous, '/login/passkey/options', { csrf: token })
    await formRefusals(anonymous, '/login/passkey', fields)
    const malformed = await anonymous.post('/login/passkey', { ...fields, response: '' })
    expect((await check('POST', '/login/passkey', malformed)).status).toBe(400)
    expect((await accepted(anonymous, '/login/passkey', fields)).status).toBe(303)
    const stranger = new PageBrowser(pages)
    const other = formToken(await (await stranger.get('/login')).text())
    const unknown = await optionsAt(stranger, '/login/passkey/options', { csrf: other })
    const notAccepted = await stranger.post('/login/passkey', {
      csrf: other,
      challenge: unknown.challenge,
      response: JSON.stringify(foreign.assert(unknown.options)),
    })
    expect((await check('POST', '/login/passkey', notAccepted)).status).toBe(401)

    // Removal; 404 for one removed meanwhile, 400 for a malformed field.
    const { passkeys } = (await (
      await pages.request('/v1/user/passkeys', { token: apiToken })
    ).json()) as { passkeys: { id: string }[] }
    const remove = { csrf, passkey: passkeys[0]!.id }
    await formRefusals(browser, '/account/passkeys/remove', remove)
    const long = await browser.post('/account/passkeys/remove', { csrf, passkey: 'x'.repeat(65) })
    expect((await check('POST', '/account/passkeys/remove', long)).status).toBe(400)
    expect((await accepted(browser, '/account/passkeys/remove', remove)).status).toBe(303)
    const gone = await browser.post('/account/passkeys/remove', remove)
    expect((await check('POST', '/account/passkeys/remove', gone)).status).toBe(404)
    expect(
      (
        await check(
          'POST',
          '/account/passkeys/remove',
          await new PageBrowser(pages).post('/account/passkeys/remove', remove),
        )
      ).status,
    ).toBe(303)

    // Not recent: 401 without a password, and with a wrong one; 429 past the password budget.
    const recentOnly = await signedIn(strict)
    strict.clock.advance(301_000)
    const notRecent = await recentOnly.browser.post('/account/passkeys/options', {
      csrf: recentOnly.csrf,
    })
    expect((await check('POST', '/account/passkeys/options', notRecent)).status).toBe(401)
    const late = await recentOnly.browser.post('/account/passkeys', {
      ...add,
      csrf: recentOnly.csrf,
    })
    expect((await check('POST', '/account/passkeys', late)).status).toBe(400)
    const wrong = await recentOnly.browser.post('/account/passkeys/remove', {
      csrf: recentOnly.csrf,
      passkey: remove.passkey,
      password: 'not-the-password',
    })
    expect((await check('POST', '/account/passkeys/remove', wrong)).status).toBe(401)
    const guessing = await recentOnly.browser.post('/account/passkeys/options', {
      csrf: recentOnly.csrf,
      password: 'not-the-password',
    })
    expect((await check('POST', '/account/passkeys/options', guessing)).status).toBe(429)
    const stillGuessing = await recentOnly.browser.post('/account/passkeys/remove', {
      csrf: recentOnly.csrf,
      passkey: remove.passkey,
      password: 'not-the-password',
    })
    expect((await check('POST', '/account/passkeys/remove', stillGuessing)).status).toBe(429)

    // 409: twenty passkeys already.
    const full = await signedIn()
    let spare: { options: never; challenge: string } | undefined
    for (let i = 0; i < 20; i += 1) {
      if (i === 19)
        spare = await optionsAt(full.browser, '/account/passkeys/options', { csrf: full.csrf })
      const o = await optionsAt(full.browser, '/account/passkeys/options', { csrf: full.csrf })
      const res = await full.browser.post('/account/passkeys', {
        csrf: full.csrf,
        name: `Key ${i}`,
        challenge: o.challenge,
        response: JSON.stringify(
          new SoftwareAuthenticator(TESSERA_TEST_ISSUER).register(o.options),
        ),
      })
      expect(res.status).toBe(303)
    }
    const tooMany = await full.browser.post('/account/passkeys/options', { csrf: full.csrf })
    const overLimit = await full.browser.post('/account/passkeys', {
      csrf: full.csrf,
      name: 'One more',
      challenge: spare!.challenge,
      response: JSON.stringify(
        new SoftwareAuthenticator(TESSERA_TEST_ISSUER).register(spare!.options),
      ),
    })
    expect((await check('POST', '/account/passkeys', overLimit)).status).toBe(409)
    expect((await check('POST', '/account/passkeys/options', tooMany)).status).toBe(409)

    // A disabled account's passkey signs in no more (403); 429 past the per-address budget.
    const key = new SoftwareAuthenticator(TESSERA_TEST_ISSUER)
    const victim = await signedIn()
    const o = await optionsAt(victim.browser, '/account/passkeys/options', { csrf: victim.csrf })
    await victim.browser.post('/account/passkeys', {
      csrf: victim.csrf,
      name: 'Key',
      challenge: o.challenge,
      response: JSON.stringify(key.register(o.options)),
    })
    await setDisabled(pages.server.tessera, victim.user.id, true)
    const s2 = await optionsAt(stranger, '/login/passkey/options', { csrf: other })
    const disabled = await stranger.post('/login/passkey', {
      csrf: other,
      challenge: s2.challenge,
      response: JSON.stringify(key.assert(s2.options)),
    })
    expect((await check('POST', '/login/passkey', disabled)).status).toBe(403)
    // An app of its own (closed with the others): spending the address's budget would refuse
    // the other tests' logins.
    const onePerAddress = await federation.app({ env: { RATE_LIMIT_LOGIN_PER_IP: '1' } })
    const limited = new PageBrowser(onePerAddress)
    const limitedToken = formToken(await (await limited.get('/login')).text())
    expect((await limited.post('/login/passkey/options', { csrf: limitedToken })).status).toBe(200)
    const over = await limited.post('/login/passkey/options', { csrf: limitedToken })
    expect((await check('POST', '/login/passkey/options', over)).status).toBe(429)

    const page = await pages.request('/login')
    const script = /src="(\/assets\/passkeys\.js\?v=[0-9a-f]{12})"/.exec(await page.text())![1]!
    expect((await check('GET', '/assets/passkeys.js', await pages.request(script))).status).toBe(
      200,
    )
    expect(
      (await check('GET', '/assets/passkeys.js', await pages.request('/assets/passkeys.js')))
        .status,
    ).toBe(200)
  })

  it('GET and POST /forgot-password, GET and POST /reset-password', async () => {
    const browser = new PageBrowser(pages)
    const page = await browser.get('/forgot-password')
    expect((await check('GET', '/forgot-password', page)).status).toBe(200)
    const csrf = formToken(await page.text())
    const { email } = await register(pages, uniqueEmail('page-reset'))
    const bad = await browser.post('/forgot-password', { csrf, email: 'not an address' })
    expect((await check('POST', '/forgot-password', bad)).status).toBe(400)
    await formRefusals(browser, '/forgot-password', { csrf, email })
    expect((await accepted(browser, '/forgot-password', { csrf, email })).status).toBe(303)

    expect(
      (await check('GET', '/reset-password', await browser.get('/reset-password'))).status,
    ).toBe(400)
    await pages.server.mail.sendDue()
    const code = await outboxResetCode(outboxDirectory(pages.server.tessera.config), email)
    const moved = await check(
      'GET',
      '/reset-password',
      await browser.get(`/reset-password?token=${code}`),
    )
    expect(moved).toEqual({ status: 303, location: '/reset-password' })
    expect(
      (await check('GET', '/reset-password', await browser.get('/reset-password'))).status,
    ).toBe(200)
    const fields = { csrf, new_password: 'a-new-page-contract-password-5' }
    const weak = await browser.post('/reset-password', { csrf, new_password: 'password' })
    expect((await check('POST', '/reset-password', weak)).status).toBe(400)
    await formRefusals(browser, '/reset-password', fields)
    expect((await accepted(browser, '/reset-password', fields)).status).toBe(303)

    // 429 on the strict app: one request and one wrong token per address and window.
    const limited = new PageBrowser(strict)
    const token = formToken(await (await limited.get('/forgot-password')).text())
    const target = { csrf: token, email: uniqueEmail('limited') }
    expect((await limited.post('/forgot-password', target)).status).toBe(303)
    const tooMany = await limited.post('/forgot-password', target)
    expect((await check('POST', '/forgot-password', tooMany)).status).toBe(429)
    await (await limited.get(`/reset-password?token=tessera_pr_${'A'.repeat(43)}`)).arrayBuffer()
    const wrong = { csrf: token, new_password: 'a-new-page-contract-password-5' }
    expect((await limited.post('/reset-password', wrong)).status).toBe(400)
    await (await limited.get(`/reset-password?token=tessera_pr_${'B'.repeat(43)}`)).arrayBuffer()
    const guessing = await limited.post('/reset-password', wrong)
    expect((await check('POST', '/reset-password', guessing)).status).toBe(429)
  })

  it('GET and POST /login, GET and POST /register, POST /logout', async () => {
    const anonymous = new PageBrowser(pages)
    for (const path of ['/login', '/register']) {
      expect((await check('GET', path, await anonymous.get(path))).status).toBe(200)
      const open = await anonymous.get(`${path}?return_to=https%3A%2F%2Fevil.example%2F`)
      expect((await check('GET', path, open)).status).toBe(400)
    }
    const csrf = formToken(await (await anonymous.get('/login')).text())
    const { email } = await register(pages, uniqueEmail('page-contract'))
    const credentials = { csrf, email, password: PASSWORD }
    expect(
      (await check('POST', '/login', await anonymous.post('/login', { csrf, email }))).status,
    ).toBe(400)
    const wrong = await anonymous.post('/login', { ...credentials, password: 'wrong password!' })
    expect((await check('POST', '/login', wrong)).status).toBe(401)
    await formRefusals(anonymous, '/login', credentials)
    expect((await accepted(anonymous, '/login', credentials)).status).toBe(303)
    for (const path of ['/login', '/register'])
      expect((await check('GET', path, await anonymous.get(path))).status).toBe(303)

    const newcomer = new PageBrowser(pages)
    const token = formToken(await (await newcomer.get('/register')).text())
    const fresh = { csrf: token, email: uniqueEmail('page-contract'), password: PASSWORD }
    const weak = await newcomer.post('/register', { ...fresh, password: 'password' })
    expect((await check('POST', '/register', weak)).status).toBe(400)
    const taken = await newcomer.post('/register', { ...fresh, email })
    expect((await check('POST', '/register', taken)).status).toBe(409)
    await formRefusals(newcomer, '/register', fresh)
    expect((await accepted(newcomer, '/register', { ...fresh, display_name: 'New' })).status).toBe(
      303,
    )

    const account = formToken(await (await newcomer.get('/account')).text())
    await formRefusals(newcomer, '/logout', { csrf: account })
    const bad = await newcomer.post('/logout', { csrf: 'wrong' })
    expect((await check('POST', '/logout', bad)).status).toBe(403)
    expect((await accepted(newcomer, '/logout', { csrf: account })).status).toBe(303)

    // 429 on the strict app: one failed attempt per account, one registration per address.
    const limited = new PageBrowser(strict)
    const limitedToken = formToken(await (await limited.get('/login')).text())
    const target = { csrf: limitedToken, email: uniqueEmail('limited'), password: 'guess one!' }
    await (await limited.post('/login', target)).arrayBuffer()
    expect((await check('POST', '/login', await limited.post('/login', target))).status).toBe(429)
    // Signed in, continuing to an application: one code minted per address and window.
    const { browser: signedInStrict } = await signedIn(strict)
    for (const path of ['/login', '/register']) {
      const pkce = clientPkce()
      const query = `?return_to=${encodeURIComponent(CLIENT_REDIRECT_URI)}&${pkce.query}`
      await (await signedInStrict.get(`${path}${query}`)).arrayBuffer()
      const over = await signedInStrict.get(`${path}${query}`)
      expect((await check('GET', path, over)).status).toBe(429)
    }
    const registration = { csrf: limitedToken, password: PASSWORD }
    await limited.post('/register', { ...registration, email: uniqueEmail('r1') })
    const second = await limited.post('/register', { ...registration, email: uniqueEmail('r2') })
    expect((await check('POST', '/register', second)).status).toBe(429)
  })

  it('POST /login answering the MFA step, and POST /login/mfa', async () => {
    /** An account with TOTP, its password step done in a fresh browser: the step page. */
    async function atStep(app: TestApp) {
      // Not through the API's registration: the strict app allows one a window.
      const email = uniqueEmail('page-mfa')
      await registerAccount(app.server.tessera, { email, password: PASSWORD }, NO_CLIENT)
      const { secret, recoveryCodes } = await enrolTotp(app, (await login(app, email)).access_token)
      app.clock.advance(60_000)
      const browser = new PageBrowser(app)
      const csrf = formToken(await (await browser.get('/login')).text())
      const step = await browser.post('/login', { csrf, email, password: PASSWORD })
      const html = await step.clone().text()
      expect((await check('POST', '/login', step)).status).toBe(200)
      const ticket = /name="mfa_ticket" value="([^"]+)"/.exec(html)![1]!
      return { browser, csrf, ticket, secret, recoveryCodes }
    }
    const { browser, csrf, ticket, secret } = await atStep(pages)
    const right = totpCode(pages, secret)
    const wrongCode = right === '123456' ? '654321' : '123456'
    const fields = { csrf, mfa_ticket: ticket, totp_code: right }
    const wrong = await browser.post('/login/mfa', { ...fields, totp_code: wrongCode })
    expect((await check('POST', '/login/mfa', wrong)).status).toBe(400)
    await formRefusals(browser, '/login/mfa', fields)
    expect((await accepted(browser, '/login/mfa', fields)).status).toBe(303)
    // 429 on the strict app: one wrong code per account and window.
    const limited = await atStep(strict)
    const limitedFields = { csrf: limited.csrf, mfa_ticket: limited.ticket, totp_code: wrongCode }
    await (await limited.browser.post('/login/mfa', limitedFields)).arrayBuffer()
    const tooMany = await limited.browser.post('/login/mfa', limitedFields)
    expect((await check('POST', '/login/mfa', tooMany)).status).toBe(429)
  })

  it('POST /login/mfa/passkey/options, and a passkey at POST /login/mfa', async () => {
    /** An account with only a passkey, its password step done in a fresh browser. */
    async function atStep(app: TestApp) {
      const email = uniqueEmail('page-mfa-passkey')
      await registerAccount(app.server.tessera, { email, password: PASSWORD }, NO_CLIENT)
      const token = (await login(app, email)).access_token
      const authenticator = new SoftwareAuthenticator(TESSERA_TEST_ISSUER)
      const reg = (await (
        await app.request('/v1/user/passkeys/registration-options', { method: 'POST', token })
      ).json()) as { options: never; challenge: string }
      const added = await app.request('/v1/user/passkeys', {
        token,
        json: {
          name: 'Key',
          challenge: reg.challenge,
          response: authenticator.register(reg.options),
        },
      })
      expect(added.status).toBe(201)
      const browser = new PageBrowser(app)
      const csrf = formToken(await (await browser.get('/login')).text())
      const step = await browser.post('/login', { csrf, email, password: PASSWORD })
      const html = await step.clone().text()
      expect((await check('POST', '/login', step)).status).toBe(200)
      expect(html).toContain('Use a passkey')
      const ticket = /name="mfa_ticket" value="([^"]+)"/.exec(html)![1]!
      return { browser, csrf, ticket, authenticator }
    }
    const path = '/login/mfa/passkey/options'
    const { browser, csrf, ticket, authenticator } = await atStep(pages)
    const optionsOf = async (fields: Record<string, string>) => {
      await checkRequestBody('POST', path, FORM, fields)
      const res = await browser.post(path, fields, { headers: { accept: '*/*' } })
      expect((await check('POST', path, res)).status).toBe(200)
      return (await res.json()) as { options: never; challenge: string }
    }
    const begun = await optionsOf({ csrf, mfa_ticket: ticket })
    const bad = await browser.post(path, { csrf, mfa_ticket: 'tessera_mt_x' })
    expect((await check('POST', path, bad)).status).toBe(400)
    await formRefusals(browser, path, { csrf, mfa_ticket: ticket })
    const proof = (challenge: string, response: unknown) => ({
      csrf,
      mfa_ticket: ticket,
      webauthn: JSON.stringify({ challenge, response }),
    })
    const foreign = new SoftwareAuthenticator(TESSERA_TEST_ISSUER)
    const refused = await browser.post(
      '/login/mfa',
      proof(begun.challenge, foreign.assert(begun.options)),
    )
    expect((await check('POST', '/login/mfa', refused)).status).toBe(401)
    const spent = await browser.post(
      '/login/mfa',
      proof(begun.challenge, authenticator.assert(begun.options)),
    )
    expect((await check('POST', '/login/mfa', spent)).status).toBe(400)
    const next = await optionsOf({ csrf, mfa_ticket: ticket })
    const right = proof(next.challenge, authenticator.assert(next.options))
    expect((await accepted(browser, '/login/mfa', right)).status).toBe(303)
    // 429 on the strict app: one attempt per account and window.
    const limited = await atStep(strict)
    const fields = { csrf: limited.csrf, mfa_ticket: limited.ticket }
    await (await limited.browser.post(path, fields)).arrayBuffer()
    const tooMany = await limited.browser.post(path, fields)
    expect((await check('POST', path, tooMany)).status).toBe(429)
  })

  it('POST /login/federated and GET /login/complete', async () => {
    const browser = new PageBrowser(pages)
    const csrf = formToken(await (await browser.get('/login')).text())
    const path = '/login/federated'
    expect((await check('POST', path, await browser.post(path, { csrf }))).status).toBe(400)
    const unknown = await browser.post(path, { csrf, provider: 'nope' })
    expect((await check('POST', path, unknown)).status).toBe(404)
    const down = await browser.post(path, { csrf, provider: 'gitlab' })
    expect((await check('POST', path, down)).status).toBe(503)
    await formRefusals(browser, path, { csrf, provider: 'google' })
    federation.idp.current = {
      sub: uniqueSubject('page-contract'),
      email: uniqueEmail('page-fed'),
      email_verified: true,
    }
    const pkce = clientPkce()
    const started = await accepted(browser, path, {
      csrf,
      provider: 'google',
      state: 'contract',
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
    })
    expect(started.status).toBe(303)
    const callback = await browser.browser.toCallback(started.location!)
    const back = await browser.browser.fetch(callback)
    const complete = back.headers.get('location')!.slice(TESSERA_TEST_ISSUER.length)
    const template = '/login/complete'
    const stranger = new PageBrowser(pages)
    expect((await check('GET', template, await stranger.get(complete))).status).toBe(400)
    expect((await check('GET', template, await browser.get(complete))).status).toBe(303)

    const limited = new PageBrowser(strict)
    const token = formToken(await (await limited.get('/login')).text())
    await (await limited.post(path, { csrf: token, provider: 'nope' })).arrayBuffer()
    const over = await limited.post(path, { csrf: token, provider: 'google' })
    expect((await check('POST', path, over)).status).toBe(429)
    await (await limited.get('/login/complete?state=x')).arrayBuffer()
    expect(
      (await check('GET', template, await limited.get('/login/complete?state=x'))).status,
    ).toBe(429)
  })

  it('GET /account and its forms', async () => {
    const anonymous = new PageBrowser(pages)
    expect((await check('GET', '/account', await anonymous.get('/account'))).status).toBe(303)
    const { browser, email, user, csrf } = await signedIn()
    expect((await check('GET', '/account', await browser.get('/account'))).status).toBe(200)

    const profile = '/account/profile'
    const long = await browser.post(profile, { csrf, display_name: 'x'.repeat(101) })
    expect((await check('POST', profile, long)).status).toBe(400)
    await formRefusals(browser, profile, { csrf, display_name: 'Ada' })
    expect((await accepted(browser, profile, { csrf, display_name: 'Ada' })).status).toBe(303)

    const password = '/account/password'
    const change = { csrf, current_password: PASSWORD, new_password: `${PASSWORD}-2` }
    const weak = await browser.post(password, { ...change, new_password: 'password' })
    expect((await check('POST', password, weak)).status).toBe(400)
    const wrong = await browser.post(password, { ...change, current_password: 'not it, no' })
    expect((await check('POST', password, wrong)).status).toBe(401)
    await formRefusals(browser, password, change)
    expect((await accepted(browser, password, change)).status).toBe(303)

    const revoke = '/account/sessions/revoke'
    await login(pages, email, `${PASSWORD}-2`)
    const { id: sid } = await pages.server.tessera.db
      .selectFrom('sessions')
      .select('id')
      .where('user_id', '=', user.id)
      .where('kind', '=', 'api')
      .where('revoked_at', 'is', null)
      .executeTakeFirstOrThrow()
    expect((await check('POST', revoke, await browser.post(revoke, { csrf }))).status).toBe(400)
    const unknown = await browser.post(revoke, {
      csrf,
      session: '00000000-0000-4000-8000-000000000000',
    })
    expect((await check('POST', revoke, unknown)).status).toBe(404)
    await formRefusals(browser, revoke, { csrf, session: sid })
    expect((await accepted(browser, revoke, { csrf, session: sid })).status).toBe(303)

    const everywhere = '/account/sign-out-everywhere'
    await formRefusals(browser, everywhere, { csrf })
    expect((await accepted(browser, everywhere, { csrf })).status).toBe(303)

    const limited = await signedIn(strict)
    const guess = { csrf: limited.csrf, current_password: 'guess one!', new_password: PASSWORD }
    await (await limited.browser.post(password, guess)).arrayBuffer()
    expect(
      (await check('POST', password, await limited.browser.post(password, guess))).status,
    ).toBe(429)
  })

  it('POST /account/link, /account/unlink and /account/reauthenticate', async () => {
    const { browser, csrf } = await signedIn()
    const link = '/account/link'
    const unlink = '/account/unlink'
    const reauth = '/account/reauthenticate'
    expect((await check('POST', link, await browser.post(link, { csrf }))).status).toBe(400)
    const nope = await browser.post(link, { csrf, provider: 'nope' })
    expect((await check('POST', link, nope)).status).toBe(404)
    const down = await browser.post(link, { csrf, provider: 'gitlab' })
    expect((await check('POST', link, down)).status).toBe(503)
    await formRefusals(browser, link, { csrf, provider: 'google' })
    federation.idp.current = {
      sub: uniqueSubject('page-link'),
      email: uniqueEmail('page-link'),
      email_verified: true,
    }
    const started = await browser.post(link, { csrf, provider: 'google' })
    const callback = await browser.browser.toCallback(started.headers.get('location')!)
    expect((await browser.browser.fetch(callback)).status).toBe(302)
    await checkRequestBody('POST', link, FORM, { csrf, provider: 'google' })
    expect((await check('POST', link, started)).status).toBe(303)

    expect((await check('POST', unlink, await browser.post(unlink, { csrf }))).status).toBe(400)
    const notLinked = await browser.post(unlink, { csrf, provider: 'github' })
    expect((await check('POST', unlink, notLinked)).status).toBe(404)
    await formRefusals(browser, unlink, { csrf, provider: 'google' })

    // Past REAUTH_MAX_AGE: the step (200), then its password form.
    pages.clock.advance(301_000)
    expect(
      (await check('POST', link, await browser.post(link, { csrf, provider: 'cilogon' }))).status,
    ).toBe(200)
    expect(
      (await check('POST', unlink, await browser.post(unlink, { csrf, provider: 'google' })))
        .status,
    ).toBe(200)
    const step = { csrf, action: 'unlink', provider: 'google', password: PASSWORD }
    const badAction = await browser.post(reauth, { ...step, action: 'delete' })
    expect((await check('POST', reauth, badAction)).status).toBe(400)
    const wrong = await browser.post(reauth, { ...step, password: 'not it, no' })
    expect((await check('POST', reauth, wrong)).status).toBe(401)
    const nothing = await browser.post(reauth, { ...step, provider: 'github' })
    expect((await check('POST', reauth, nothing)).status).toBe(404)
    await formRefusals(browser, reauth, step)
    expect((await accepted(browser, reauth, step)).status).toBe(303)
    pages.clock.advance(301_000)
    const unreachable = await browser.post(reauth, { ...step, action: 'link', provider: 'gitlab' })
    expect((await check('POST', reauth, unreachable)).status).toBe(503)
    pages.clock.advance(-602_000)

    // Recent again (the step above): unlinking now goes through.
    const relinked = await browser.post(link, { csrf, provider: 'google' })
    const back = await browser.browser.toCallback(relinked.headers.get('location')!)
    expect((await browser.browser.fetch(back)).status).toBe(302)
    expect((await accepted(browser, unlink, { csrf, provider: 'google' })).status).toBe(303)

    // The only way into a federated account cannot be unlinked.
    federation.idp.current = { sub: uniqueSubject('page-only'), email: uniqueEmail('page-only') }
    const only = new PageBrowser(pages)
    const token = formToken(await (await only.get('/login')).text())
    const flow = await only.post('/login/federated', { csrf: token, provider: 'cilogon' })
    const done = await only.browser.fetch(
      await only.browser.toCallback(flow.headers.get('location')!),
    )
    await only.get(done.headers.get('location')!.slice(TESSERA_TEST_ISSUER.length))
    const onlyToken = formToken(await (await only.get('/account')).text())
    const last = await only.post(unlink, { csrf: onlyToken, provider: 'cilogon' })
    expect((await check('POST', unlink, last)).status).toBe(409)

    const limited = await signedIn(strict)
    const over = await limited.browser.post(link, { csrf: limited.csrf, provider: 'google' })
    await over.arrayBuffer()
    const second = await limited.browser.post(link, { csrf: limited.csrf, provider: 'google' })
    expect((await check('POST', link, second)).status).toBe(429)
    strict.clock.advance(301_000)
    const guess = { csrf: limited.csrf, action: 'link', provider: 'google', password: 'guess!' }
    await (await limited.browser.post(reauth, guess)).arrayBuffer()
    expect((await check('POST', reauth, await limited.browser.post(reauth, guess))).status).toBe(
      429,
    )
    strict.clock.advance(-301_000)
  })

  it('GET and POST /device, /device/approve, /device/deny and /device/reauthenticate', async () => {
    const [page, approve, deny, reauth] = [
      '/device',
      '/device/approve',
      '/device/deny',
      '/device/reauthenticate',
    ]
    const anonymous = new PageBrowser(pages)
    expect((await check('GET', page, await anonymous.get('/device?user_code=x'))).status).toBe(303)
    for (const path of [page, approve, deny, reauth]) {
      const res = await anonymous.post(path, { user_code: 'x', password: PASSWORD })
      expect((await check('POST', path, res)).status, path).toBe(303)
    }
    const { browser, csrf } = await signedIn()
    expect((await check('GET', page, await browser.get('/device?user_code=x'))).status).toBe(200)
    for (const path of [page, approve, deny, reauth]) {
      const fields = { csrf, user_code: 'BCDF-GHJK', password: PASSWORD }
      expect((await check('POST', path, await browser.post(path, { csrf }))).status).toBe(400)
      expect((await check('POST', path, await browser.post(path, fields))).status).toBe(400)
      await formRefusals(browser, path, fields)
    }
    const first = await startDevice(pages)
    const code = { csrf, user_code: first.user_code }
    expect((await accepted(browser, page, code)).status).toBe(200)
    expect((await accepted(browser, approve, code)).status).toBe(303)
    const second = await startDevice(pages)
    expect((await accepted(browser, deny, { csrf, user_code: second.user_code })).status).toBe(303)
    // Past REAUTH_MAX_AGE: approving asks first (200); the password form then approves.
    const third = await startDevice(pages)
    const step = { csrf, user_code: third.user_code, password: PASSWORD }
    pages.clock.advance(301_000)
    const asked = await browser.post(approve, { csrf, user_code: third.user_code })
    expect((await check('POST', approve, asked)).status).toBe(200)
    const wrong = await browser.post(reauth, { ...step, password: 'not it, no' })
    expect((await check('POST', reauth, wrong)).status).toBe(401)
    pages.clock.advance(-301_000)
    expect((await accepted(browser, reauth, step)).status).toBe(303)

    // One wrong code per session and window on the strict app; one wrong password per account.
    const limited = await signedIn(strict)
    const guess = { csrf: limited.csrf, user_code: 'BCDF-GHJK' }
    await (await limited.browser.post(page, guess)).arrayBuffer()
    for (const path of [page, approve, deny]) {
      const over = await limited.browser.post(path, guess)
      expect((await check('POST', path, over)).status, path).toBe(429)
    }
    strict.clock.advance(301_000)
    const password = { ...guess, password: 'guess!' }
    await (await limited.browser.post(reauth, password)).arrayBuffer()
    expect((await check('POST', reauth, await limited.browser.post(reauth, password))).status).toBe(
      429,
    )
    strict.clock.advance(-301_000)
  })

  it('the verification and email-change pages, send again, the account email form', async () => {
    const { browser, email, csrf } = await signedIn()
    // The verification link: the token moves into a cookie, the page's button spends it.
    const verify = await outboxToken(pages, email, 'tessera_ev_')
    const moved = await browser.get(`/verify-email?token=${verify}`)
    expect((await check('GET', '/verify-email', moved)).status).toBe(303)
    expect((await check('GET', '/verify-email', await browser.get('/verify-email'))).status).toBe(
      200,
    )
    const pageCsrf = await browser.token('/verify-email')
    await formRefusals(browser, '/verify-email', { csrf: pageCsrf })
    expect((await accepted(browser, '/verify-email', { csrf: pageCsrf })).status).toBe(303)
    const spent = await browser.post('/verify-email', { csrf: pageCsrf, code: verify })
    expect((await check('POST', '/verify-email', spent)).status).toBe(400)

    // "Send again".
    const send = { csrf: pageCsrf, email }
    expect((await accepted(browser, '/verify-email/send', send)).status).toBe(303)
    const noEmail = await browser.post('/verify-email/send', { csrf: pageCsrf })
    expect((await check('POST', '/verify-email/send', noEmail)).status).toBe(400)
    await formRefusals(browser, '/verify-email/send', send)
    const limited = new PageBrowser(strict)
    const limitedCsrf = await limited.token('/login')
    const limitedSend = { csrf: limitedCsrf, email: uniqueEmail('send-limited') }
    await (await limited.post('/verify-email/send', limitedSend)).arrayBuffer()
    const refused = await limited.post('/verify-email/send', limitedSend)
    expect((await check('POST', '/verify-email/send', refused)).status).toBe(429)

    // The account page's change form, then the confirmation link.
    const next = uniqueEmail('page-changed')
    const change = { csrf, email: next, current_password: PASSWORD }
    await formRefusals(browser, '/account/email', change)
    const bad = await browser.post('/account/email', { ...change, email: 'not an address' })
    expect((await check('POST', '/account/email', bad)).status).toBe(400)
    expect((await accepted(browser, '/account/email', change)).status).toBe(303)
    const confirm = await outboxToken(pages, next, 'tessera_ec_')
    const held = await browser.get(`/email-change?token=${confirm}`)
    expect((await check('GET', '/email-change', held)).status).toBe(303)
    expect((await check('GET', '/email-change', await browser.get('/email-change'))).status).toBe(
      200,
    )
    const changeCsrf = await browser.token('/email-change')
    await formRefusals(browser, '/email-change', { csrf: changeCsrf })
    expect((await accepted(browser, '/email-change', { csrf: changeCsrf })).status).toBe(303)
    const used = await browser.post('/email-change', { csrf: changeCsrf, code: confirm })
    expect((await check('POST', '/email-change', used)).status).toBe(400)

    // Two accounts for one address: the second confirmation is refused.
    const contested = uniqueEmail('page-contested')
    const other = await signedIn()
    const ask = (who: { browser: PageBrowser; csrf: string }) =>
      who.browser.post('/account/email', {
        csrf: who.csrf,
        email: contested,
        current_password: PASSWORD,
      })
    expect((await ask(other)).status).toBe(303)
    const late = await outboxToken(pages, contested, 'tessera_ec_')
    expect((await ask({ browser, csrf })).status).toBe(303)
    const first = await outboxToken(pages, contested, 'tessera_ec_')
    const won = await browser.post('/email-change', { csrf: changeCsrf, code: first })
    expect((await check('POST', '/email-change', won)).status).toBe(303)
    const lost = await browser.post('/email-change', { csrf: changeCsrf, code: late })
    expect((await check('POST', '/email-change', lost)).status).toBe(409)

    // Registration under REQUIRE_VERIFIED_EMAIL: the check-your-mail page.
    const newcomer = new PageBrowser(verifying)
    const token = await newcomer.token('/register')
    const fresh = { csrf: token, email: uniqueEmail('page-verifying'), password: PASSWORD }
    expect((await accepted(newcomer, '/register', fresh)).status).toBe(201)
  })

  it('GET /assets/tessera.css', async () => {
    const css = await pages.request('/assets/tessera.css')
    expect((await check('GET', '/assets/tessera.css', css)).status).toBe(200)
  })
}
