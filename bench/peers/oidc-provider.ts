/**
 * The certified peer of `npm run bench`: panva's oidc-provider (a certified OpenID Provider, on
 * Koa) with its in-memory adapter and refresh-token rotation on, in its own process. The bench
 * compares Tessera's refresh, `/v1/user/me` and introspection with its refresh grant, userinfo
 * and introspection (docs/performance.md).
 *
 * Its tokens are minted non-interactively through its own models (a Grant per refresh token, as
 * one authorization-code flow each would have left them, then the tokens, saved in its adapter):
 * the grants under load are the provider's own code paths. Prints, once it listens, one JSON line:
 * its URL, the client's credentials, `REFRESH_TOKENS` refresh tokens and one access token.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import Provider from 'oidc-provider'
// Its own in-memory adapter, given a larger store than the 1,000 entries of its default: the
// bench's tokens and their rotated predecessors would evict the grants mid-run (every refresh
// then fails with invalid_grant). Passed as the `adapter` option: the default adapter makes its
// own 1,000-entry store per provider, so the module's `setStorage` does not reach it.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js'
import LRU from 'oidc-provider/lib/helpers/lru.js'

const store = new LRU({ maxSize: 10_000_000 })

const CLIENT_ID = 'bench'
const CLIENT_SECRET = 'bench-client-secret-0123456789'
const ACCOUNT = 'bench-account'
const REFRESH_TOKENS = Number(process.env.REFRESH_TOKENS ?? 600)

const server = createServer()
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

const provider = new Provider(url, {
  adapter: (model: string) => new MemoryAdapter(model, store),
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['refresh_token', 'client_credentials', 'authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'offline_access', 'email'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
  },
  // Every refresh spends its token and issues a successor, as Tessera's does.
  rotateRefreshToken: true,
  cookies: { keys: ['bench-cookie-key-0123456789'] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: 'bench@example.org', email_verified: true }),
  }),
})
server.on('request', provider.callback())

const client = await provider.Client.find(CLIENT_ID)
if (client === undefined) throw new Error('the bench client is missing')
async function newGrant(): Promise<string> {
  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: CLIENT_ID })
  grant.addOIDCScope('openid email offline_access')
  return grant.save()
}
const now = Math.floor(Date.now() / 1000)
const refreshTokens: string[] = []
for (let i = 0; i < REFRESH_TOKENS; i++) {
  const grantId = await newGrant()
  const token = new provider.RefreshToken({
    accountId: ACCOUNT,
    client,
    grantId,
    gty: 'authorization_code',
    scope: 'openid email offline_access',
    authTime: now,
    iat: now,
    expiresWithSession: false,
  })
  refreshTokens.push(await token.save())
}
const access = new provider.AccessToken({
  accountId: ACCOUNT,
  client,
  grantId: await newGrant(),
  gty: 'authorization_code',
  scope: 'openid email',
})
const accessToken = await access.save()

process.stdout.write(
  `${JSON.stringify({
    url,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    refreshTokens,
    accessToken,
  })}\n`,
)
process.on('SIGTERM', () => server.close(() => process.exit(0)))
