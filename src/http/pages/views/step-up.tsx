import type { FC } from 'hono/jsx'
import type { Notice } from '../messages.js'
import { CsrfField, Layout, NoticeBox, PasswordField } from './layout.js'
import { type ProviderButton, ProviderButtons } from './sign-in.js'

export interface StepUpView {
  csrf: string
  name: string
  /** Why the page asks, in one sentence. */
  reason: string
  hasPassword: boolean
  /** Where the password form posts, with its hidden fields and its button's label. */
  form: { action: string; fields: Record<string, string>; submit: string }
  /** Linked providers that can sign in again, and the page a sign-in comes back to. */
  signInWith: ProviderButton[]
  returnTo: string
  cancel: string
  notice?: Notice | undefined
}

/**
 * A step-up before a change that adds or removes a way into the account (README, "Recent
 * authentication"): the password, or signing in again with a linked identity.
 */
export const StepUpPage: FC<StepUpView> = (view) => (
  <Layout title="Confirm it is you" signedIn={{ name: view.name, csrf: view.csrf }}>
    <h1>Confirm it is you</h1>
    <p>{view.reason}</p>
    <NoticeBox notice={view.notice} />
    {view.hasPassword && (
      <form method="post" action={view.form.action}>
        <CsrfField token={view.csrf} />
        {Object.entries(view.form.fields).map(([name, value]) => (
          <input type="hidden" name={name} value={value} />
        ))}
        <PasswordField name="password" label="Password" autocomplete="current-password" />
        <div class="actions">
          <button type="submit">{view.form.submit}</button>
        </div>
      </form>
    )}
    {view.signInWith.length > 0 && (
      <>
        <p class="or">
          {view.hasPassword ? 'Or sign in again with:' : 'Sign in again with a linked identity:'}
        </p>
        <ProviderButtons
          csrf={view.csrf}
          request={{ returnTo: view.returnTo }}
          providers={view.signInWith}
          verb="Sign in again"
        />
      </>
    )}
    <p>
      <a href={view.cancel}>Cancel</a>
    </p>
  </Layout>
)
