import type { Child, FC } from 'hono/jsx'
import { SCRIPT_URL, STYLESHEET_URL } from '../assets.js'
import type { Notice } from '../messages.js'

export interface SignedInHeader {
  /** Who is signed in, as the header says it (display name, else email). */
  name: string
  /** The session's form token, for the sign-out button. */
  csrf: string
}

/**
 * Every page: `lang`, viewport, the one stylesheet, a skip link, the site header (with the
 * sign-out button when signed in) and the main landmark, in that focus order.
 */
export const Layout: FC<{
  title: string
  signedIn?: SignedInHeader
  /** Loads the passkey script (README, "Passkeys"); the page's CSP must allow it. */
  script?: boolean
  children?: Child
}> = ({ title, signedIn, script, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`${title} · Tessera`}</title>
      <link rel="stylesheet" href={STYLESHEET_URL} />
      {script === true && <script src={SCRIPT_URL} defer />}
    </head>
    <body>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="site">
        <a class="brand" href="/account">
          Tessera
        </a>
        {signedIn !== undefined && (
          <nav aria-label="Account">
            <span>Signed in as {signedIn.name}</span>
            <form method="post" action="/logout" class="inline">
              <CsrfField token={signedIn.csrf} />
              <button type="submit" class="secondary">
                Sign out
              </button>
            </form>
          </nav>
        )}
      </header>
      <main id="main">{children}</main>
    </body>
  </html>
)

/**
 * A password input and its label, the one way the pages ask for a password: required, and no
 * longer than the API accepts (1024).
 */
export const PasswordField: FC<{
  name: string
  label: string
  autocomplete: 'current-password' | 'new-password'
  /** When a page has two fields of one name (the account page's password and email forms). */
  id?: string
}> = ({ name, label, autocomplete, id = name }) => (
  <>
    <label for={id}>{label}</label>
    <input
      type="password"
      id={id}
      name={name}
      autocomplete={autocomplete}
      required
      maxlength={1024}
    />
  </>
)

export const EmailField: FC<{
  label: string
  /** `username` where the address signs in (password managers pair it with the password). */
  autocomplete: 'username' | 'email'
  id?: string
  value?: string | undefined
}> = ({ label, autocomplete, id = 'email', value }) => (
  <>
    <label for={id}>{label}</label>
    <input
      type="email"
      id={id}
      name="email"
      autocomplete={autocomplete}
      required
      maxlength={254}
      value={value ?? ''}
    />
  </>
)

export const CsrfField: FC<{ token: string }> = ({ token }) => (
  <input type="hidden" name="csrf" value={token} />
)

/** A result or refusal: announced by screen readers (`status`, or `alert` for errors). */
export const NoticeBox: FC<{ notice: Notice | undefined; id?: string }> = ({ notice, id }) =>
  notice === undefined ? null : (
    <div
      class={`notice ${notice.kind}`}
      role={notice.kind === 'error' ? 'alert' : 'status'}
      id={id}
    >
      <p>{notice.text}</p>
      {notice.detail !== undefined && <p>{notice.detail}</p>}
    </div>
  )
