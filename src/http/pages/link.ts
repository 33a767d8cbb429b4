import { html } from 'hono/html'
import type { HtmlEscapedString } from 'hono/utils/html'
import type { TesseraError } from '../../errors.js'
import type { CallbackErrorCode } from '../../federation/outcomes.js'
import { isProviderName, PROVIDERS } from '../../federation/provider-table.js'

/**
 * The pages a browser sees around a single-use link URL (README, "Linking from an API client"):
 * the result at `/link/done` and the refusal of a ticket. Every text is fixed here and chosen by
 * a code from a closed list; nothing from the request is shown. Minimal on purpose, without
 * styles or scripts (the app's CSP is `default-src 'none'`); the shared page layout replaces
 * `page` once it exists.
 */
function page(title: string, message: string): HtmlEscapedString | Promise<HtmlEscapedString> {
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>${title} · Tessera</title>
  </head>
  <body>
    <main>
      <h1>${title}</h1>
      <p>${message}</p>
      <p>You can close this window.</p>
    </main>
  </body>
</html>
`
}

/** What each `?error=` of a link flow means for the person who started it. */
const LINK_ERRORS: Record<CallbackErrorCode, string> = {
  access_denied: 'The sign-in at the provider was cancelled or declined. Nothing was linked.',
  provider_error:
    "The provider's answer could not be used, or the provider could not be reached. " +
    'Nothing was linked; try again later.',
  account_exists: 'An account with this email address already exists. Nothing was linked.',
  account_disabled: 'Your Tessera account is disabled. Nothing was linked.',
  email_required: 'The provider gave no verified email address. Nothing was linked.',
  link_required: 'This provider can only be linked to an account you are signed in to.',
  identity_taken:
    'This identity is already linked to another Tessera account. Nothing was linked to yours.',
  provider_already_linked:
    'Your account already has an identity of this provider. Unlink it first, then try again.',
  session_ended:
    'You signed out (or your session ended) before linking finished. Nothing was linked; ' +
    'sign in again and start over.',
}

const isLinkError = (code: string): code is CallbackErrorCode => Object.hasOwn(LINK_ERRORS, code)

/** `/link/done?linked=<provider>` or `?error=<code>`; anything else gets a neutral page. */
export function linkDonePage(query: { linked?: string; error?: string }) {
  if (query.linked !== undefined && isProviderName(query.linked)) {
    const provider = PROVIDERS[query.linked]
    const verified = provider.grantsAcademic ? ' Your account is now verified.' : ''
    return page(
      `${provider.label} linked`,
      `Your ${provider.label} identity is now linked to your Tessera account.${verified}`,
    )
  }
  if (query.error !== undefined && isLinkError(query.error)) {
    return page('Nothing was linked', LINK_ERRORS[query.error])
  }
  return page('Linking', 'There is nothing to show here.')
}

/** A ticket (or anything else at `/link/<ticket>`) that could not start a flow. */
export function linkRefusedPage(error: TesseraError) {
  const message =
    error.code === 'invalid_link_ticket'
      ? 'This link is unknown, expired or already used. Links work once, for 5 minutes: ' +
        'ask the application for a new one.'
      : error.code === 'rate_limited'
        ? 'Too many attempts from your network. Wait a few minutes, then ask the application ' +
          'for a new link.'
        : error.code === 'service_unavailable'
          ? 'The provider or Tessera cannot be reached right now. Ask the application for a new ' +
            'link in a moment.'
          : 'This link cannot be used. Ask the application for a new one.'
  return page(error.title, message)
}
