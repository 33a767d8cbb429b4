import type { FC } from 'hono/jsx'
import type { Notice } from '../messages.js'
import { CsrfField, Layout, NoticeBox } from './layout.js'

/** What a mailed token does, as its page says it. */
export type EmailTokenAction = 'verify' | 'change' | 'cancel'

const TEXTS: Record<EmailTokenAction, { title: string; lead: string; button: string }> = {
  verify: {
    title: 'Verify your email address',
    lead: 'Confirm that this address is yours.',
    button: 'Verify my email address',
  },
  change: {
    title: 'Confirm your new email address',
    lead: 'Confirm the change: your account then uses this address to sign in and for mail.',
    button: 'Confirm the new address',
  },
  cancel: {
    title: 'Cancel the email change',
    lead: 'Cancel the change of your account’s address: it keeps the current one.',
    button: 'Cancel the change',
  },
}

export interface EmailTokenView {
  csrf: string
  /** The page's own path, where its form posts. */
  path: string
  /** What the held token does; undefined when the browser holds none (enter the code instead). */
  action: EmailTokenAction | undefined
  /** What the page is for when no token is held. */
  fallback: EmailTokenAction
  notice?: Notice | undefined
}

/**
 * The page a mailed link opens (README, "Email verification and change"): the token was moved
 * into a cookie on arrival, so the form only confirms; opening the link (a mail scanner's fetch
 * included) changes nothing. Without a token, the code from the mail can be entered.
 */
export const EmailTokenPage: FC<EmailTokenView> = (view) => {
  const text = TEXTS[view.action ?? view.fallback]
  return (
    <Layout title={text.title}>
      <h1>{text.title}</h1>
      <NoticeBox notice={view.notice} />
      <form method="post" action={view.path}>
        <CsrfField token={view.csrf} />
        {view.action === undefined ? (
          <>
            <label for="code">Code from the mail</label>
            <input
              type="text"
              id="code"
              name="code"
              autocomplete="one-time-code"
              required
              maxlength={64}
              spellcheck={false}
            />
          </>
        ) : (
          <p>{text.lead}</p>
        )}
        <div class="actions">
          <button type="submit">{text.button}</button>
        </div>
      </form>
    </Layout>
  )
}

/** "Send again": a new verification mail to an address (the answer is the same for any). */
export const ResendVerificationForm: FC<{ csrf: string; email: string }> = ({ csrf, email }) => (
  <form method="post" action="/verify-email/send">
    <CsrfField token={csrf} />
    <input type="hidden" name="email" value={email} />
    <div class="actions">
      <button type="submit" class="secondary">
        Send the verification mail again
      </button>
    </div>
  </form>
)

/** After registration under REQUIRE_VERIFIED_EMAIL: the account exists, its address is unproven. */
export const CheckMailPage: FC<{ csrf: string; email: string; notice?: Notice | undefined }> = (
  view,
) => (
  <Layout title="Check your mail">
    <h1>Check your mail</h1>
    <NoticeBox notice={view.notice} />
    <p>
      {`A link to verify your address is on its way to ${view.email}. Follow it, then sign in.`}
    </p>
    <ResendVerificationForm csrf={view.csrf} email={view.email} />
    <p>
      <a href="/login">Sign in</a>
    </p>
  </Layout>
)
