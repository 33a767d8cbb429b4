/*
 * Tessera's one page script (README, "Passkeys"), served at /assets/passkeys.js after the
 * bundled @simplewebauthn/browser (global SimpleWebAuthnBrowser). Only the sign-in and account
 * pages load it, and only for passkeys: every other form works without it. It shows the passkey
 * forms when the browser can use WebAuthn, asks the page's own routes for options (posting the
 * form's CSRF token), runs the ceremony, puts the answer into the form's hidden fields and
 * submits the form as an ordinary post, so the server answers with a page as for any form.
 */
;(() => {
  const webauthn = globalThis.SimpleWebAuthnBrowser
  if (webauthn === undefined || !webauthn.browserSupportsWebAuthn()) return

  /** Shows `text` in the form's notice box (role=alert, read out by screen readers). */
  function say(form, text) {
    const box = form.querySelector('[data-passkey-notice]')
    if (box === null) return
    box.hidden = false
    box.querySelector('p').textContent = text
  }

  async function optionsFor(form) {
    const body = new URLSearchParams()
    for (const name of form.dataset.passkeyOptionFields.split(' ')) {
      const field = form.elements.namedItem(name)
      if (field !== null && field.value !== '') body.set(name, field.value)
    }
    const res = await fetch(form.dataset.passkeyOptions, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      credentials: 'same-origin',
    })
    // A signed-out browser is sent to the sign-in page (HTML): reloading shows it.
    const answer = await res.json().catch(() => undefined)
    if (answer === undefined) throw new Error('This page has expired: reload it and try again.')
    if (!res.ok) throw new Error(answer.detail ?? answer.title ?? 'The server refused.')
    return answer
  }

  async function ceremony(form) {
    const begun = await optionsFor(form)
    const optionsJSON = begun.options
    const response =
      form.dataset.passkey === 'register'
        ? await webauthn.startRegistration({ optionsJSON })
        : await webauthn.startAuthentication({ optionsJSON })
    // The MFA step takes both in one `webauthn` field; the other forms in two.
    const proof = form.elements.namedItem('webauthn')
    if (proof !== null) {
      proof.value = JSON.stringify({ challenge: begun.challenge, response })
    } else {
      form.elements.namedItem('challenge').value = begun.challenge
      form.elements.namedItem('response').value = JSON.stringify(response)
    }
    // A password given for the step-up went with the options already.
    const password = form.elements.namedItem('password')
    if (password !== null) password.value = ''
    form.submit()
  }

  for (const form of document.querySelectorAll('form[data-passkey]')) {
    form.closest('[data-passkey-section]')?.removeAttribute('hidden')
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const button = form.querySelector('button[type=submit]')
      button.disabled = true
      ceremony(form).catch((error) => {
        button.disabled = false
        say(form, error instanceof Error ? error.message : String(error))
      })
    })
  }
})()
