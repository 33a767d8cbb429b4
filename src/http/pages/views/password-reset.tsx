import type { FC } from 'hono/jsx'
import type { Notice } from '../messages.js'
import { CsrfField, EmailField, Layout, NoticeBox } from './layout.js'

export interface ForgotPasswordView {
  csrf: string
  email?: string | undefined
  notice?: Notice | undefined
}

export const ForgotPasswordPage: FC<ForgotPasswordView> = (view) => (
  <Layout title="Reset your password">
    <h1>Reset your password</h1>
    <NoticeBox notice={view.notice} />
    <p>
      Enter the email address of your account. We send it a link to choose a new password; it works
      once, for 30 minutes.
    </p>
    <form method="post" action="/forgot-password">
      <CsrfField token={view.csrf} />
      <EmailField label="Email address" autocomplete="username" value={view.email} />
      <div class="actions">
        <button type="submit">Send the link</button>
      </div>
    </form>
    <p>
      Remembered it? <a href="/login">Sign in</a>
    </p>
  </Layout>
)

export interface ResetPasswordView {
  csrf: string
  passwordMinLength: number
  notice?: Notice | undefined
}

export const ResetPasswordPage: FC<ResetPasswordView> = (view) => (
  <Layout title="Choose a new password">
    <h1>Choose a new password</h1>
    <NoticeBox notice={view.notice} />
    <form method="post" action="/reset-password">
      <CsrfField token={view.csrf} />
      <label for="new_password">New password</label>
      <span class="hint" id="password-hint">
        {`At least ${view.passwordMinLength} characters. Setting it signs you out everywhere.`}
      </span>
      <input
        type="password"
        id="new_password"
        name="new_password"
        autocomplete="new-password"
        required
        minlength={view.passwordMinLength}
        maxlength={1024}
        aria-describedby="password-hint"
      />
      <div class="actions">
        <button type="submit">Set the password</button>
      </div>
    </form>
  </Layout>
)

/** The reset page without a usable link: what to do instead. */
export const ResetLinkMissingPage: FC<{ notice: Notice }> = ({ notice }) => (
  <Layout title="Choose a new password">
    <h1>Choose a new password</h1>
    <NoticeBox notice={notice} />
    <p>
      <a href="/forgot-password">Request a new link</a> or <a href="/login">sign in</a>.
    </p>
  </Layout>
)
