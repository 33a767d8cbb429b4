import { type Answer, type AuthorizedRequest, expectOk } from './answer.js'
import { cancellableOnInterrupt, sleep } from './cancel.js'
import { CliFailure } from './failure.js'
import { type CliIo, printError, printLine } from './io.js'
import { hasDisplay } from './login-method.js'
import { openBrowser } from './open-browser.js'
import { readSecret } from './prompt.js'

/** How often the account is looked at while the browser is at CILogon. */
export const VERIFY_POLL_MS = 2_000
/**
 * How long the command waits: the link URL works for 5 minutes (LINK_TICKET_TTL_SECONDS), and
 * the sign-in at the institution may take a few more.
 */
export const VERIFY_TIMEOUT_MS = 10 * 60_000

interface Me {
  email?: unknown
  account_type?: unknown
  verified?: unknown
}

const isVerifiedAcademic = (me: Me) => me.account_type === 'academic' && me.verified === true

/**
 * `tessera user verify` (README, "Command line"): CILogon academic verification for the
 * logged-in account. The server issues a single-use link URL for CILogon (README, "Linking from
 * an API client"); the browser follows it (here, or on another device through the printed link
 * and QR code), and the command polls `/v1/user/me` until the account is academic and verified.
 */
export async function verifyAcademic(io: CliIo, call: AuthorizedRequest): Promise<void> {
  const me = expectOk(await call('GET', '/v1/user/me')) as Me
  if (isVerifiedAcademic(me)) {
    printLine(io, `${String(me.email)} is already verified as academic`)
    return
  }
  const url = await linkUrl(io, call)
  const opened =
    (hasDisplay(io.env) || io.env.BROWSER !== undefined) && (await openBrowser(url, io.env))
  if (opened) {
    printError(io, 'Your browser is open at CILogon: sign in there with your institution.')
  } else {
    // The link is a one-time ticket for this account (5 minutes, single use): printing it is how
    // another device gets it, as the device login prints its code.
    printError(io, 'Open this link on a device with a browser and sign in with your institution')
    printError(io, `(it works once, within 5 minutes): ${url}`)
    const { default: qrcode } = await import('qrcode-terminal')
    printError(io, 'or scan this with a phone:')
    qrcode.generate(url, { small: true }, (code) => printError(io, code))
  }
  printError(io, 'Waiting for the verification (Ctrl-C to cancel)...')
  const verified = await cancellableOnInterrupt(
    (signal) => waitVerified(call, signal),
    'verification',
  )
  printLine(io, `Verified: ${String(verified.email)} is an academic account`)
}

/**
 * The link URL. Linking adds a way into the account, so the server wants a recent
 * authentication (README, "Recent authentication"): asked for the password here, or, for an
 * account without one, told to log in again.
 */
async function linkUrl(io: CliIo, call: AuthorizedRequest): Promise<string> {
  let answer = await call('POST', '/v1/user/identities/cilogon/link-url')
  if (needsReauthentication(answer)) {
    printError(io, 'Verifying adds CILogon as a way into your account: confirm it is you.')
    const password = await readSecret(io, 'Password (Enter if your account has none): ').catch(
      () => '',
    )
    if (password === '') throw logInAgain()
    const proved = await call('POST', '/v1/user/auth/reauthenticate', { password })
    if (!proved.ok && proved.problem.code === 'invalid_credentials') {
      throw new CliFailure(
        'the password is wrong (an account without a password: log in again with ' +
          'tessera user login, then run tessera user verify right away)',
      )
    }
    expectOk(proved)
    answer = await call('POST', '/v1/user/identities/cilogon/link-url')
  }
  if (!answer.ok && answer.problem.code === 'not_found') {
    throw new CliFailure('this server has no CILogon sign-in, so it cannot verify accounts')
  }
  const url = (expectOk(answer) as { url?: unknown }).url
  if (typeof url !== 'string') throw new CliFailure('the server did not answer with a link URL')
  return url
}

const needsReauthentication = (answer: Answer) =>
  !answer.ok && answer.problem.code === 'reauthentication_required'

const logInAgain = () =>
  new CliFailure(
    'your login is not recent enough to verify: log in again (tessera user login), then run ' +
      'tessera user verify right away',
  )

async function waitVerified(call: AuthorizedRequest, signal: AbortSignal): Promise<Me> {
  const deadline = Date.now() + VERIFY_TIMEOUT_MS
  while (Date.now() < deadline) {
    await sleep(VERIFY_POLL_MS, signal)
    const answer = await call('GET', '/v1/user/me')
    // 5xx: the server is briefly unavailable; keep waiting.
    if (!answer.ok && answer.status >= 500) continue
    const me = expectOk(answer) as Me
    if (isVerifiedAcademic(me)) return me
  }
  throw new CliFailure(
    'the account was not verified within 10 minutes; if the browser said nothing was linked, ' +
      'fix that and run tessera user verify again',
  )
}
