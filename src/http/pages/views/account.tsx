import type { FC } from 'hono/jsx'
import type { Notice } from '../messages.js'
import { ResendVerificationForm } from './email.js'
import { CsrfField, EmailField, Layout, NoticeBox, PasswordField } from './layout.js'
import type { ProviderButton } from './sign-in.js'
import { StepUpPage } from './step-up.js'

export type AccountForm = 'profile' | 'password' | 'passkeys' | 'mfa'

export interface AccountView {
  csrf: string
  user: {
    email: string
    displayName: string | null
    accountType: string
    verified: boolean
    emailVerified: boolean
    hasPassword: boolean
  }
  /** An email change waiting for the new address to confirm it. */
  emailChange?: { email: string; expiresAt: string } | undefined
  identities: { provider: string; label: string; email: string | null; linkedAt: string }[]
  /** Enabled providers not linked yet. */
  linkable: ProviderButton[]
  /** CILogon is enabled, not linked, and the account is not academic and verified. */
  verifyWith: ProviderButton | undefined
  sessions: {
    id: string
    device: string
    ip: string | null
    createdAt: string
    lastUsedAt: string
    current: boolean
  }[]
  /** README, "Passkeys". */
  passkeys: { id: string; name: string; createdAt: string; lastUsed: string; synced: boolean }[]
  /**
   * Adding or removing a passkey needs a recent authentication: `password` when the session's is
   * not recent and the account has a password (the forms ask for it), `sign-in-again` when it has
   * none, undefined when the session is recent.
   */
  passkeyStepUp: 'password' | 'sign-in-again' | undefined
  /**
   * README, "Second factors": TOTP's state, since when it is on, the unused recovery codes. Its
   * forms ask for a recent authentication the way the passkey forms do (`passkeyStepUp`).
   */
  mfa: {
    totp: 'none' | 'pending' | 'enrolled'
    since: string | undefined
    recoveryCodesLeft: number
  }
  notice?: Notice | undefined
  /** A refused form's reason, shown at that form. */
  formNotice?: { form: AccountForm; notice: Notice } | undefined
  /** After signing in again: the change that asked for it, to confirm with one button. */
  pending?: { action: 'link' | 'unlink'; provider: ProviderButton } | undefined
}

const PostButton: FC<{
  action: string
  csrf: string
  fields?: Record<string, string>
  label: string
  kind?: 'secondary' | 'danger'
}> = ({ action, csrf, fields = {}, label, kind }) => (
  <form method="post" action={action} class="inline">
    <CsrfField token={csrf} />
    {Object.entries(fields).map(([name, value]) => (
      <input type="hidden" name={name} value={value} />
    ))}
    <button type="submit" class={kind}>
      {label}
    </button>
  </form>
)

const ACTION_LABELS = { link: 'Link', unlink: 'Unlink' } as const

const ACCOUNT_TYPES: Record<string, string> = {
  regular: 'Regular',
  academic: 'Academic',
  service: 'Service',
  superuser: 'Superuser',
}

export const AccountPage: FC<AccountView> = (view) => {
  const name = view.user.displayName ?? view.user.email
  const formNotice = (form: AccountForm) =>
    view.formNotice?.form === form ? view.formNotice.notice : undefined
  return (
    <Layout title="Your account" signedIn={{ name, csrf: view.csrf }} script>
      <h1>Your account</h1>
      <NoticeBox notice={view.notice} />
      {view.pending !== undefined && (
        <div class="notice info" role="status">
          <p>
            {`You signed in again. Confirm: ${view.pending.action} ${view.pending.provider.label}.`}
          </p>
          <div class="actions">
            <PostButton
              action={`/account/${view.pending.action}`}
              csrf={view.csrf}
              fields={{ provider: view.pending.provider.name }}
              label={`${ACTION_LABELS[view.pending.action]} ${view.pending.provider.label}`}
            />
          </div>
        </div>
      )}

      <h2 id="profile">Profile</h2>
      <dl class="facts">
        <dt>Email address</dt>
        <dd>{view.user.email}</dd>
        <dt>Account type</dt>
        <dd>{ACCOUNT_TYPES[view.user.accountType] ?? view.user.accountType}</dd>
        <dt>Verified</dt>
        <dd>{view.user.verified ? 'Yes' : 'No'}</dd>
      </dl>
      <NoticeBox notice={formNotice('profile')} />
      <form method="post" action="/account/profile">
        <CsrfField token={view.csrf} />
        <label for="display_name">Display name</label>
        <input
          type="text"
          id="display_name"
          name="display_name"
          autocomplete="name"
          maxlength={100}
          value={view.user.displayName ?? ''}
        />
        <div class="actions">
          <button type="submit">Save display name</button>
        </div>
      </form>

      {view.verifyWith !== undefined && (
        <>
          <h2 id="verify">Academic status</h2>
          <p>
            {`Sign in with your institution through ${view.verifyWith.label} to mark this ` +
              'account as academic and verified. Your institution account stays linked, so you ' +
              'can also sign in with it.'}
          </p>
          <div class="actions">
            <PostButton
              action="/account/link"
              csrf={view.csrf}
              fields={{ provider: view.verifyWith.name }}
              label={`Verify academic status with ${view.verifyWith.label}`}
            />
          </div>
        </>
      )}

      <h2 id="email">Email address</h2>
      <p>
        {view.user.emailVerified
          ? `${view.user.email} is verified.`
          : `${view.user.email} is not verified yet: follow the link mailed to it.`}
      </p>
      {!view.user.emailVerified && (
        <ResendVerificationForm csrf={view.csrf} email={view.user.email} />
      )}
      {view.emailChange !== undefined && (
        <div class="notice info" role="status">
          <p>
            {`A change to ${view.emailChange.email} waits for its confirmation (until ` +
              `${view.emailChange.expiresAt}): follow the link mailed there.`}
          </p>
        </div>
      )}
      <form method="post" action="/account/email">
        <CsrfField token={view.csrf} />
        <EmailField label="New email address" autocomplete="email" id="new_email" />
        {view.user.hasPassword && (
          <PasswordField
            name="current_password"
            id="email_current_password"
            label="Your password"
            autocomplete="current-password"
          />
        )}
        <div class="actions">
          <button type="submit">Change email address</button>
        </div>
      </form>

      <h2 id="identities">Linked identities</h2>
      {view.identities.length === 0 ? (
        <p>No identity of another provider is linked.</p>
      ) : (
        <ul class="items">
          {view.identities.map((i) => (
            <li>
              <span class="what">
                <strong>{i.label}</strong>
                <span class="detail">{`${i.email ?? 'no email'} · linked ${i.linkedAt}`}</span>
              </span>
              <PostButton
                action="/account/unlink"
                csrf={view.csrf}
                fields={{ provider: i.provider }}
                label={`Unlink ${i.label}`}
                kind="danger"
              />
            </li>
          ))}
        </ul>
      )}
      {view.linkable.length > 0 && (
        <div class="actions">
          {view.linkable.map((p) => (
            <PostButton
              action="/account/link"
              csrf={view.csrf}
              fields={{ provider: p.name }}
              label={`Link ${p.label}`}
              kind="secondary"
            />
          ))}
        </div>
      )}

      <Passkeys view={view} notice={formNotice('passkeys')} />

      <TwoStep view={view} notice={formNotice('mfa')} />

      <h2 id="sessions">Sessions</h2>
      <p>Where your account is signed in. Sign out any you do not recognise.</p>
      <ul class="items">
        {view.sessions.map((s) => (
          <li>
            <span class="what">
              <strong>{s.device}</strong>
              {s.current && <span class="badge">this browser</span>}
              <span class="detail">
                {`${s.ip ?? 'unknown address'} · signed in ${s.createdAt} · ` +
                  `last used ${s.lastUsedAt}`}
              </span>
            </span>
            <PostButton
              action="/account/sessions/revoke"
              csrf={view.csrf}
              fields={{ session: s.id }}
              label={s.current ? 'Sign out this browser' : 'Sign out'}
              kind="secondary"
            />
          </li>
        ))}
      </ul>
      <div class="actions">
        <PostButton
          action="/account/sign-out-everywhere"
          csrf={view.csrf}
          label="Sign out everywhere"
          kind="danger"
        />
      </div>

      <h2 id="password">Password</h2>
      {view.user.hasPassword ? (
        <>
          <NoticeBox notice={formNotice('password')} />
          <form method="post" action="/account/password">
            <CsrfField token={view.csrf} />
            <input type="hidden" name="username" value={view.user.email} autocomplete="username" />
            <PasswordField
              name="current_password"
              label="Current password"
              autocomplete="current-password"
            />
            <PasswordField name="new_password" label="New password" autocomplete="new-password" />
            <div class="actions">
              <button type="submit">Change password</button>
            </div>
          </form>
        </>
      ) : (
        <p>This account has no password: you sign in with a linked identity.</p>
      )}
    </Layout>
  )
}

const StepUpPassword: FC<{ view: AccountView; id: string }> = ({ view, id }) =>
  view.passkeyStepUp !== 'password' ? null : (
    <PasswordField name="password" id={id} label="Your password" autocomplete="current-password" />
  )

/**
 * The account's passkeys (README, "Passkeys"): the list and its remove buttons work without
 * script; adding one needs WebAuthn, so its form stays hidden until the passkey script runs.
 */
const Passkeys: FC<{ view: AccountView; notice: Notice | undefined }> = ({ view, notice }) => (
  <>
    <h2 id="passkeys">Passkeys</h2>
    <p>
      A passkey signs you in without your password, with your device's screen lock or a security
      key.
    </p>
    <NoticeBox notice={notice} />
    {view.passkeyStepUp === 'sign-in-again' && (
      <p>To add or remove a passkey, sign out and sign in again first.</p>
    )}
    {view.passkeys.length === 0 ? (
      <p>No passkey is registered.</p>
    ) : (
      <ul class="items">
        {view.passkeys.map((p) => (
          <li>
            <span class="what">
              <strong>{p.name}</strong>
              <span class="detail">
                {`${p.synced ? 'synced' : 'this device only'} · added ${p.createdAt} · ` +
                  `last used ${p.lastUsed}`}
              </span>
            </span>
            <form method="post" action="/account/passkeys/remove" class="inline">
              <CsrfField token={view.csrf} />
              <input type="hidden" name="passkey" value={p.id} />
              <StepUpPassword view={view} id={`passkey_password_${p.id}`} />
              <button type="submit" class="danger">
                {`Remove ${p.name}`}
              </button>
            </form>
          </li>
        ))}
      </ul>
    )}
    <section data-passkey-section="" hidden>
      <form
        method="post"
        action="/account/passkeys"
        data-passkey="register"
        data-passkey-options="/account/passkeys/options"
        data-passkey-option-fields="csrf password"
      >
        <CsrfField token={view.csrf} />
        <input type="hidden" name="challenge" value="" />
        <input type="hidden" name="response" value="" />
        <label for="passkey_name">Passkey name</label>
        <input
          type="text"
          id="passkey_name"
          name="name"
          required
          maxlength={64}
          placeholder="e.g. Work laptop"
        />
        <StepUpPassword view={view} id="passkey_password" />
        <div class="notice error" role="alert" data-passkey-notice="" hidden>
          <p />
        </div>
        <div class="actions">
          <button type="submit">Add a passkey</button>
        </div>
      </form>
    </section>
  </>
)

/**
 * Two-step verification (README, "Second factors"): set up TOTP, make new recovery codes, turn
 * it off (with a current code, or a recent authentication). No script: forms and pages.
 */
const TwoStep: FC<{ view: AccountView; notice: Notice | undefined }> = ({ view, notice }) => (
  <>
    <h2 id="mfa">Two-step verification</h2>
    <NoticeBox notice={notice} />
    {view.mfa.totp === 'enrolled' ? (
      <>
        <p data-mfa-state="on">
          {`On since ${view.mfa.since ?? 'unknown'}: signing in asks for a code from your ` +
            `authenticator app. Recovery codes left: ${view.mfa.recoveryCodesLeft}.`}
        </p>
        {view.passkeyStepUp === 'sign-in-again' && (
          <p>To make new recovery codes, sign out and sign in again first.</p>
        )}
        <form method="post" action="/account/mfa/recovery-codes">
          <CsrfField token={view.csrf} />
          <StepUpPassword view={view} id="mfa_codes_password" />
          <div class="actions">
            <button type="submit" class="secondary">
              New recovery codes
            </button>
          </div>
        </form>
        <form method="post" action="/account/mfa/totp/remove">
          <CsrfField token={view.csrf} />
          <label for="mfa_off_code">
            Current code from your app (not needed just after signing in)
          </label>
          <input
            type="text"
            id="mfa_off_code"
            name="code"
            autocomplete="one-time-code"
            inputmode="numeric"
            maxlength={16}
          />
          <StepUpPassword view={view} id="mfa_off_password" />
          <div class="actions">
            <button type="submit" class="danger">
              Turn off two-step verification
            </button>
          </div>
        </form>
      </>
    ) : (
      <>
        <p data-mfa-state="off">
          Off. With it on, signing in also asks for a code from an authenticator app on your phone.
        </p>
        {view.passkeyStepUp === 'sign-in-again' && (
          <p>To set it up, sign out and sign in again first.</p>
        )}
        <form method="post" action="/account/mfa/totp">
          <CsrfField token={view.csrf} />
          <StepUpPassword view={view} id="mfa_password" />
          <div class="actions">
            <button type="submit">Set up an authenticator app</button>
          </div>
        </form>
      </>
    )}
  </>
)

export interface ReauthenticateView {
  csrf: string
  name: string
  action: 'link' | 'unlink'
  provider: ProviderButton
  hasPassword: boolean
  /** Linked providers that can sign in, for an account without a password (or as well). */
  signInWith: ProviderButton[]
  notice?: Notice | undefined
}

/**
 * The step-up before linking or unlinking (README, "Recent authentication"): the password, or
 * signing in again with a linked identity, which comes back to the account page to confirm.
 */
export const ReauthenticatePage: FC<ReauthenticateView> = (view) => (
  <StepUpPage
    csrf={view.csrf}
    name={view.name}
    reason={
      `To ${view.action} ${view.provider.label}, prove again that this is your account: ` +
      'this change adds or removes a way into it.'
    }
    hasPassword={view.hasPassword}
    form={{
      action: '/account/reauthenticate',
      fields: { action: view.action, provider: view.provider.name },
      submit: `Confirm and ${view.action} ${view.provider.label}`,
    }}
    signInWith={view.signInWith}
    returnTo={`/account?continue=${view.action}:${view.provider.name}`}
    cancel="/account"
    notice={view.notice}
  />
)
