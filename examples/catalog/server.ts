import { serve } from '@hono/node-server'
import { createVerifier, type RevocationOptions } from 'tessera/verify'
import { createCatalogApp } from './app.js'

// TESSERA_URL: where Tessera publishes its keys. TESSERA_ISSUER must match Tessera's; the
// audience is this service's own name, one of Tessera's AUDIENCES (README, "Scripts, pipelines
// and services"): tokens minted for other services are refused here.
const tesseraUrl = (process.env.TESSERA_URL ?? 'http://localhost:8000').replace(/\/+$/, '')
// Revocations (README, "tessera/verify in a TypeScript service"): the event stream by default,
// TESSERA_REVOCATIONS=poll to pull every REVOCATIONS_POLL_MS instead, `off` for none.
const revocationMode = process.env.TESSERA_REVOCATIONS ?? 'stream'
const revocations: RevocationOptions | undefined =
  revocationMode === 'off'
    ? undefined
    : revocationMode === 'poll'
      ? { poll: { intervalMs: Number(process.env.REVOCATIONS_POLL_MS ?? 5_000) } }
      : { stream: true }
const verifier = createVerifier(
  { keysUrl: `${tesseraUrl}/v1/keys` },
  {
    issuer: process.env.TESSERA_ISSUER ?? tesseraUrl,
    audience: process.env.TESSERA_AUDIENCE ?? 'tessera',
    cooldownMs: Number(process.env.KEYS_REFETCH_COOLDOWN_MS ?? 30_000),
    revocations,
  },
)
const port = Number(process.env.PORT ?? 8001)
const server = serve(
  { fetch: createCatalogApp(verifier).fetch, hostname: process.env.HOST ?? '0.0.0.0', port },
  (info) => {
    console.log(
      `catalog listening on http://localhost:${info.port}, verifying tokens of ${tesseraUrl}`,
    )
  },
)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    verifier.close()
    server.close()
  })
}
