import type { FC } from 'hono/jsx'
import type { Notice } from '../messages.js'
import { CsrfField, Layout, NoticeBox } from './layout.js'
import type { ProviderButton } from './sign-in.js'
import { StepUpPage } from './step-up.js'

interface SignedIn {
  csrf: string
  /** Who is signed in, as the header says it. */
  name: string
}

export interface DeviceCodeView extends SignedIn {
  /** The code as typed or as the device's link gave it (`?user_code=`). */
  userCode: string
  notice?: Notice | undefined
}

/** Step one of the verification page (RFC 8628 §3.3): type the code the device shows. */
export const DeviceCodePage: FC<DeviceCodeView> = (view) => (
  <Layout title="Log in a device" signedIn={{ name: view.name, csrf: view.csrf }}>
    <h1>Log in a device</h1>
    <NoticeBox notice={view.notice} />
    <p>Enter the code your terminal or device shows. Only enter a code you asked for yourself.</p>
    <form method="post" action="/device">
      <CsrfField token={view.csrf} />
      <label for="user_code">Code</label>
      <input
        type="text"
        id="user_code"
        name="user_code"
        autocomplete="off"
        autocapitalize="characters"
        spellcheck={false}
        required
        maxlength={32}
        value={view.userCode}
      />
      <div class="actions">
        <button type="submit">Continue</button>
      </div>
    </form>
  </Layout>
)

export interface DeviceConfirmView extends SignedIn {
  userCode: string
  clientId: string
  /** The asking device's address, or "unknown address". */
  from: string
  device: string
  askedAt: string
  expiresAt: string
}

const DecisionButton: FC<{
  action: string
  csrf: string
  userCode: string
  label: string
  kind?: 'danger'
}> = ({ action, csrf, userCode, label, kind }) => (
  <form method="post" action={action} class="inline">
    <CsrfField token={csrf} />
    <input type="hidden" name="user_code" value={userCode} />
    <button type="submit" class={kind}>
      {label}
    </button>
  </form>
)

/** Step two: who asks, from where and when; Approve or Deny. */
export const DeviceConfirmPage: FC<DeviceConfirmView> = (view) => (
  <Layout title="Approve this device?" signedIn={{ name: view.name, csrf: view.csrf }}>
    <h1>Approve this device?</h1>
    <p>
      {'Approving logs this device in to your account, '}
      <strong>{view.name}</strong>. Approve only if you started this login yourself.
    </p>
    <dl class="facts">
      <dt>Application</dt>
      <dd>{view.clientId}</dd>
      <dt>From address</dt>
      <dd>{view.from}</dd>
      <dt>Device</dt>
      <dd>{view.device}</dd>
      <dt>Asked at</dt>
      <dd>{view.askedAt}</dd>
      <dt>Code valid until</dt>
      <dd>{view.expiresAt}</dd>
    </dl>
    <div class="actions">
      <DecisionButton
        action="/device/approve"
        csrf={view.csrf}
        userCode={view.userCode}
        label="Approve"
      />
      <DecisionButton
        action="/device/deny"
        csrf={view.csrf}
        userCode={view.userCode}
        label="Deny"
        kind="danger"
      />
    </div>
  </Layout>
)

export interface DeviceReauthenticateView extends SignedIn {
  userCode: string
  hasPassword: boolean
  /** Linked providers that can sign in again. */
  signInWith: ProviderButton[]
  notice?: Notice | undefined
}

/**
 * The step-up before an approval (README, "Recent authentication"), as before linking: the
 * password, or signing in again with a linked identity, which comes back to the code form.
 */
export const DeviceReauthenticatePage: FC<DeviceReauthenticateView> = (view) => (
  <StepUpPage
    csrf={view.csrf}
    name={view.name}
    reason="Approving a device adds a way into your account: prove again that this is your account."
    hasPassword={view.hasPassword}
    form={{
      action: '/device/reauthenticate',
      fields: { user_code: view.userCode },
      submit: 'Confirm and approve',
    }}
    signInWith={view.signInWith}
    returnTo={`/device?${new URLSearchParams({ user_code: view.userCode })}`}
    cancel="/device"
    notice={view.notice}
  />
)
