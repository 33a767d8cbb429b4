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
 * A passkey as the second factor: hidden until the passkey script finds WebAuthn in the browser;
 * the script asks `/login/mfa/passkey/options` with the token and the ticket, and posts the
 * form with `webauthn` set to the challenge and the assertion (JSON).
 */
const PasskeyStep: FC<MfaStepView> = (view) => (
  <section data-passkey-section="" hidden>
    <form
      method="post"
      action="/login/mfa"
      data-passkey="authenticate"
      data-passkey-options="/login/mfa/passkey/options"
      data-passkey-option-fields="csrf mfa_ticket"
    >
      <CsrfField token={view.csrf} />
      <SignInFields request={view.request} />
      <input type="hidden" name="mfa_ticket" value={view.ticket} />
      <input type="hidden" name="webauthn" value="" />
      <div class="notice error" role="alert" data-passkey-notice="" hidden>
        <p />
      </div>
      <div class="actions">
        <button type="submit" class={view.factors.includes('totp') ? 'secondary' : undefined}>
          Use a passkey
        </button>
      </div>
    </form>
  </section>
)

/**
 * The second step of a sign-in (README, "Second factors"): the code forms need no JavaScript;
 * the code field says what it is to password managers and phones (`one-time-code`, numeric
 * keypad). A recovery code goes in its own form, since it is not numeric. A passkey needs the
 * passkey script, loaded only when the account has one.
 */
export const MfaStepPage: FC<MfaStepView> = (view) => (
  <Layout title="Second factor" script={view.factors.includes('webauthn')}>
    <h1>{view.factors.includes('totp') ? 'Enter your code' : 'Confirm it is you'}</h1>
    <NoticeBox notice={view.notice} />
    {view.factors.includes('webauthn') && <PasskeyStep {...view} />}
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
