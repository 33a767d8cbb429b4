/**
 * Chromium's virtual WebAuthn authenticator (CDP `WebAuthn.enable`, `addVirtualAuthenticator`)
 * and the ceremonies of @simplewebauthn/browser run in a page of Tessera's, which loads it
 * (README, "Passkeys"). The tests without a browser use `SoftwareAuthenticator` (webauthn.ts).
 */
import type { CDPSession, Page } from 'playwright-core'
import type { TestBrowser } from './browser.js'

/** A page of Tessera's with a virtual platform authenticator (CTAP2, resident keys, UV). */
export async function pageWithAuthenticator(
  chromium: TestBrowser,
  url: string,
): Promise<{ page: Page; cdp: CDPSession; authenticatorId: string }> {
  const { page, context } = await chromium.newPage()
  const cdp = await context.newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  })
  await page.goto(url)
  return { page, cdp, authenticatorId }
}

/** @simplewebauthn/browser as Tessera's page script exposes it. */
interface WebAuthnBrowser {
  startRegistration(options: { optionsJSON: unknown }): Promise<unknown>
  startAuthentication(options: { optionsJSON: unknown }): Promise<unknown>
}

/** Runs @simplewebauthn/browser's registration in the page (the page loads Tessera's script). */
export function createIn(page: Page, optionsJSON: unknown): Promise<unknown> {
  return page.evaluate(async (o) => {
    const w = (globalThis as unknown as { SimpleWebAuthnBrowser: WebAuthnBrowser })
      .SimpleWebAuthnBrowser
    return w.startRegistration({ optionsJSON: o })
  }, optionsJSON)
}

export function assertIn(page: Page, optionsJSON: unknown): Promise<unknown> {
  return page.evaluate(async (o) => {
    const w = (globalThis as unknown as { SimpleWebAuthnBrowser: WebAuthnBrowser })
      .SimpleWebAuthnBrowser
    return w.startAuthentication({ optionsJSON: o })
  }, optionsJSON)
}
