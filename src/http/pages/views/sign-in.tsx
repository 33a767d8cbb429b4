import type { FC } from 'hono/jsx'
import type { SignInRequest } from '../../../browser/return-to.js'
import type { Notice } from '../messages.js'
import { ResendVerificationForm } from './email.js'
import { CsrfField, EmailField, Layout, NoticeBox, PasswordField } from './layout.js'

export interface ProviderButton {
  name: string
  label: string
}

/** The hidden fields that carry where a sign-in continues (`signInRequestOf`). */
export const SignInFields: FC<{ request: SignInRequest }> = ({ request }) => (
  <>
    {request.returnTo !== undefined && (
      <input type="hidden" name="return_to" value={request.returnTo} />
    )}
    {request.state !== undefined && <input type="hidden" name="state" value={request.state} />}
    {request.codeChallenge !== undefined && (
      <input type="hidden" name="code_challenge" value={request.codeChallenge} />
    )}
    {request.codeChallengeMethod !== undefined && (
      <input type="hidden" name="code_challenge_method" value={request.codeChallengeMethod} />
    )}
  </>
)

/** `path` with the sign-in request as its query, for links between sign-in and registration. */
export function withSignInQuery(path: string, request: SignInRequest): string {
  const query = new URLSearchParams()
  if (request.returnTo !== undefined) query.set('return_to', request.returnTo)
  if (request.state !== undefined) query.set('state', request.state)
  if (request.codeChallenge !== undefined) query.set('code_challenge', request.codeChallenge)
  if (request.codeChallengeMethod !== undefined)
    query.set('code_challenge_method', request.codeChallengeMethod)
  const text = query.toString()
  return text === '' ? path : `${path}?${text}`
}

/** One form per provider: its button posts the form's token and the sign-in request. */
export const ProviderButtons: FC<{
  csrf: string
  request: SignInRequest
  providers: ProviderButton[]
  verb: string
}> = ({ csrf, request, providers, verb }) => (
  <div class="providers">
    {providers.map((p) => (
      <form method="post" action="/login/federated">
        <CsrfField token={csrf} />
        <SignInFields request={request} />
        <input type="hidden" name="provider" value={p.name} />
        <button type="submit" class="secondary">
          {`${verb} with ${p.label}`}
        </button>
      </form>
    ))}
  </div>
)

export interface SignInView {
  csrf: string
  request: SignInRequest
  /** The application a sign-in continues to (its redirect URI's host), if any. */
  clientHost: string | undefined
  providers: ProviderButton[]
  email?: string | undefined
  notice?: Notice | undefined
  /** After `email_not_verified`: the address a new verification mail can be sent to. */
  resendTo?: string | undefined
}

const ContinueTo: FC<{ host: string | undefined }> = ({ host }) =>
  host === undefined ? null : (
    <p>
      to continue to <strong>{host}</strong>
    </p>
  )

/**
 * Passwordless sign-in (README, "Passkeys"): hidden until the passkey script finds WebAuthn in
 * the browser; the script fills `challenge` and `response` and posts the form.
 */
const PasskeySignIn: FC<{ csrf: string; request: SignInRequest }> = ({ csrf, request }) => (
  <section data-passkey-section="" hidden>
    <form
      method="post"
      action="/login/passkey"
      data-passkey="authenticate"
      data-passkey-options="/login/passkey/options"
      data-passkey-option-fields="csrf"
    >
      <CsrfField token={csrf} />
      <SignInFields request={request} />
      <input type="hidden" name="challenge" value="" />
      <input type="hidden" name="response" value="" />
      <div class="notice error" role="alert" data-passkey-notice="" hidden>
        <p />
      </div>
      <div class="actions">
        <button type="submit" class="secondary">
          Sign in with a passkey
        </button>
      </div>
    </form>
  </section>
)

export const SignInPage: FC<SignInView> = (view) => (
  <Layout title="Sign in" script>
    <h1>Sign in</h1>
    <ContinueTo host={view.clientHost} />
    <NoticeBox notice={view.notice} />
    {view.resendTo !== undefined && (
      <ResendVerificationForm csrf={view.csrf} email={view.resendTo} />
    )}
    <form method="post" action="/login">
      <CsrfField token={view.csrf} />
      <SignInFields request={view.request} />
      <EmailField label="Email address" autocomplete="username" value={view.email} />
      <PasswordField name="password" label="Password" autocomplete="current-password" />
      <div class="actions">
        <button type="submit">Sign in</button>
      </div>
    </form>
    <PasskeySignIn csrf={view.csrf} request={view.request} />
    <p>
      <a href="/forgot-password">Forgot your password?</a>
    </p>
    {view.providers.length > 0 && (
      <>
        <p class="or">Or sign in with another account you have:</p>
        <ProviderButtons
          csrf={view.csrf}
          request={view.request}
          providers={view.providers}
          verb="Sign in"
        />
      </>
    )}
    <p>
      New here? <a href={withSignInQuery('/register', view.request)}>Create an account</a>
    </p>
  </Layout>
)

export interface RegisterView {
  csrf: string
  request: SignInRequest
  clientHost: string | undefined
  passwordMinLength: number
  email?: string | undefined
  displayName?: string | undefined
  notice?: Notice | undefined
}

export const RegisterPage: FC<RegisterView> = (view) => (
  <Layout title="Create an account">
    <h1>Create an account</h1>
    <ContinueTo host={view.clientHost} />
    <NoticeBox notice={view.notice} />
    <form method="post" action="/register">
      <CsrfField token={view.csrf} />
      <SignInFields request={view.request} />
      <EmailField label="Email address" autocomplete="email" value={view.email} />
      <label for="display_name">Display name (optional)</label>
      <input
        type="text"
        id="display_name"
        name="display_name"
        autocomplete="name"
        maxlength={100}
        value={view.displayName ?? ''}
      />
      <label for="password">Password</label>
      <span class="hint" id="password-hint">
        {`At least ${view.passwordMinLength} characters. A few unrelated words make a good one.`}
      </span>
      <input
        type="password"
        id="password"
        name="password"
        autocomplete="new-password"
        required
        minlength={view.passwordMinLength}
        maxlength={1024}
        aria-describedby="password-hint"
      />
      <div class="actions">
        <button type="submit">Create account</button>
      </div>
    </form>
    <p>
      Already have an account? <a href={withSignInQuery('/login', view.request)}>Sign in</a>
    </p>
  </Layout>
)
