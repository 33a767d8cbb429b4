import type { FC } from 'hono/jsx'
import type { Notice } from '../messages.js'
import { CsrfField, Layout, NoticeBox } from './layout.js'

/** The secret in groups of four, as people type it into an authenticator app. */
export const groupedSecret = (secret: string): string => secret.match(/.{1,4}/g)?.join(' ') ?? ''

export interface TotpSetupView {
  csrf: string
  name: string
  /**
   * The new secret and its QR code (inline SVG made by `qrcode` from the otpauth URI alone).
   * Absent when the page is shown again after a wrong code: the secret is shown only when an
   * enrolment starts (README, "Second factors"), so the app already has it.
   */
  enrolment?: { secret: string; qrSvg: string } | undefined
  notice?: Notice | undefined
}

/**
 * Setting up TOTP from the account page (README, "Pages"): scan the QR code or type the secret,
 * then confirm with a first code. No script: the QR code is markup, the confirmation a form.
 */
export const TotpSetupPage: FC<TotpSetupView> = (view) => (
  <Layout title="Set up an authenticator app" signedIn={{ name: view.name, csrf: view.csrf }}>
    <h1>Set up an authenticator app</h1>
    <NoticeBox notice={view.notice} />
    {view.enrolment !== undefined ? (
      <>
        <p>Scan this code with your authenticator app, or type the key below into it.</p>
        {/* Our own string: qrcode's SVG of the otpauth URI, no user input but that URI. */}
        <div
          class="qr"
          data-totp-qr=""
          dangerouslySetInnerHTML={{ __html: view.enrolment.qrSvg }}
        />
        <p>
          Key: <code data-totp-secret="">{groupedSecret(view.enrolment.secret)}</code>
        </p>
      </>
    ) : (
      <p>
        Type the code your app shows now for this account, or go back to your account and start
        again.
      </p>
    )}
    <form method="post" action="/account/mfa/totp/confirm">
      <CsrfField token={view.csrf} />
      <label for="totp_code">Code from your authenticator app</label>
      <input
        type="text"
        id="totp_code"
        name="code"
        required
        autocomplete="one-time-code"
        inputmode="numeric"
        pattern="[0-9 ]*"
        maxlength={16}
      />
      <div class="actions">
        <button type="submit">Turn on two-step verification</button>
        <a href="/account#mfa">Cancel</a>
      </div>
    </form>
  </Layout>
)

export interface RecoveryCodesView {
  csrf: string
  name: string
  codes: string[]
  /** After the enrolment (`enrolled`), or new codes replacing the old (`replaced`). */
  reason: 'enrolled' | 'replaced'
}

/** The ten recovery codes, shown this once (README, "Second factors"). */
export const RecoveryCodesPage: FC<RecoveryCodesView> = (view) => (
  <Layout title="Your recovery codes" signedIn={{ name: view.name, csrf: view.csrf }}>
    <h1>Your recovery codes</h1>
    <div class="notice success" role="status">
      <p>
        {view.reason === 'enrolled'
          ? 'Two-step verification is on: signing in now asks for a code from your app.'
          : 'These codes replace your old ones, which no longer work.'}
      </p>
    </div>
    <p>
      Each code signs you in once if you lose your authenticator app. Store them somewhere safe,
      such as a password manager: this page is the only time they are shown.
    </p>
    <ol class="codes" data-recovery-codes="">
      {view.codes.map((code) => (
        <li>
          <code>{code}</code>
        </li>
      ))}
    </ol>
    <div class="actions">
      <a href="/account#mfa">I have stored them: back to your account</a>
    </div>
  </Layout>
)
