import type { FC } from 'hono/jsx'
import type { SignInRequest } from '../../../browser/return-to.js'
import type { Notice } from '../messages.js'
import { CsrfField, Layout, NoticeBox } from './layout.js'
import { SignInFields } from './sign-in.js'

export interface MfaStepView {
  csrf: string
  request: SignInRequest
  /** The MFA ticket the first factor earned; a hidden field, never a URL (README, "Pages"). */
  ticket: string
  factors: string[]
  notice?: Notice | undefined
}

/**
 * The second step of a sign-in (README, "Second factors"): no JavaScript; the code field says
 * what it is to password managers and phones (`one-time-code`, numeric keypad). A recovery code
 * goes in its own form, since it is not numeric.
 */
export const MfaStepPage: FC<MfaStepView> = (view) => (
  <Layout title="Second factor">
    <h1>Enter your code</h1>
    <NoticeBox notice={view.notice} />
    {view.factors.includes('totp') && (
      <form method="post" action="/login/mfa">
        <CsrfField token={view.csrf} />
        <SignInFields request={view.request} />
        <input type="hidden" name="mfa_ticket" value={view.ticket} />
        <label for="totp_code">Code from your authenticator app</label>
        <input
          id="totp_code"
          name="totp_code"
          type="text"
          autocomplete="one-time-code"
          inputmode="numeric"
          pattern="[0-9 ]*"
          maxlength={16}
          required
          autofocus
        />
        <div class="actions">
          <button type="submit">Verify</button>
        </div>
      </form>
    )}
    {view.factors.includes('recovery_code') && (
      <details>
        <summary>Use a recovery code</summary>
        <form method="post" action="/login/mfa">
          <CsrfField token={view.csrf} />
          <SignInFields request={view.request} />
          <input type="hidden" name="mfa_ticket" value={view.ticket} />
          <label for="recovery_code">Recovery code</label>
          <input
            id="recovery_code"
            name="recovery_code"
            type="text"
            autocomplete="off"
            maxlength={32}
            required
          />
          <div class="actions">
            <button type="submit">Use recovery code</button>
          </div>
        </form>
      </details>
    )}
    <p>
      <a href="/login">Start again</a>
    </p>
  </Layout>
)
