import { createServer, type Server } from 'node:http'

/**
 * A platform front-end on another site (`http://localhost:PORT`, while Tessera is at
 * `http://127.0.0.1:PORT2`), as the README's "How a platform front-end signs users in" describes
 * it: `/` makes a PKCE pair and sends the browser to Tessera's `/login?return_to=`; `/callback`
 * checks the `state`, exchanges the code with its PKCE verifier and reads the account, all from
 * the page under CORS. `/forge` is an attacker's page that posts a form to Tessera.
 */
export interface FrontEnd {
  url: string
  /** Its redirect URI, for OAUTH_REDIRECT_URIS. */
  callback: string
  close(): Promise<void>
}

const page = (title: string, body: string) =>
  `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>` +
  `<body>${body}</body></html>`

function home(tessera: string, callback: string): string {
  return page(
    'Front-end',
    `<h1>A research platform</h1>
<button id="sign-in" type="button">Sign in with Tessera</button>
<p><a href="${tessera}/account">Verify your academic status</a></p>
<script>
const b64url = (bytes) => btoa(String.fromCharCode(...bytes))
  .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '')
document.getElementById('sign-in').addEventListener('click', async () => {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)))
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)))
  sessionStorage.setItem('pkce', JSON.stringify({ verifier, state }))
  location.href = ${JSON.stringify(`${tessera}/login?`)} + new URLSearchParams({
    return_to: ${JSON.stringify(callback)},
    state,
    code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
  })
})
</script>`,
  )
}

/**
 * The callback: checks the `state`, then exchanges the code with its verifier and reads the
 * account, both from the page under CORS (its origin is on Tessera's CORS_ORIGINS).
 */
function callbackPage(tessera: string): string {
  return page(
    'Signed in',
    `<h1>Back from Tessera</h1>
<output id="result"></output>
<script>
const query = new URLSearchParams(location.search)
const kept = JSON.parse(sessionStorage.getItem('pkce') ?? 'null')
const result = document.getElementById('result')
const tessera = ${JSON.stringify(tessera)}
if (kept === null || query.get('state') !== kept.state) {
  result.textContent = 'refused: state mismatch'
} else {
  result.dataset.code = query.get('code') ?? ''
  result.dataset.verifier = kept.verifier
  result.textContent = 'code received'
  fetch(tessera + '/v1/user/auth/oauth/exchange', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: query.get('code'), code_verifier: kept.verifier }),
  })
    .then((r) => r.json())
    .then((pair) => fetch(tessera + '/v1/user/me', {
      headers: { authorization: 'Bearer ' + pair.access_token },
    }))
    .then((r) => r.json())
    .then((me) => { result.textContent = 'signed in as ' + me.email })
    .catch((error) => { result.textContent = 'failed: ' + error })
}
</script>`,
  )
}

function forge(tessera: string): string {
  return page(
    'Win a prize',
    `<form id="forged" method="post" action="${tessera}/account/profile">
<input type="hidden" name="display_name" value="Mallory">
<input type="hidden" name="csrf" value="guessed">
</form>
<script>document.getElementById('forged').submit()</script>`,
  )
}

export async function startFrontEnd(port: number, tessera: string): Promise<FrontEnd> {
  const url = `http://localhost:${port}`
  const callback = `${url}/callback`
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', url).pathname
    const body =
      path === '/'
        ? home(tessera, callback)
        : path === '/callback'
          ? callbackPage(tessera)
          : path === '/forge'
            ? forge(tessera)
            : undefined
    if (body === undefined) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url,
    callback,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
