import { randomUUID } from 'node:crypto'
import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import {
  type AuthEnv,
  auth,
  requireAccountType,
  requireAuth,
  requireMfa,
  requireScope,
  requireVerified,
  type Verifier,
} from 'tessera/verify'

/**
 * An example catalog service in the shape of the sequence archive: projects, samples,
 * experiments and runs. Reading is public; writing needs a Tessera access token with the `write`
 * scope (a `read` personal access token can list, not create); uploading a run's files also needs
 * a session with a second factor (`requireMfa()`); the analysis route needs a verified academic
 * account. Tokens are verified locally with `tessera/verify`
 * against Tessera's published keys, and checked against its revocation feed, which the verifier
 * follows in the background: Tessera is never called per request.
 */
const KINDS = ['projects', 'samples', 'experiments', 'runs'] as const
type Kind = (typeof KINDS)[number]

interface Item {
  id: string
  name: string
  description: string
  owner: string
  created_at: string
}

function problem(status: 400 | 404, code: string, detail: string): HTTPException {
  return new HTTPException(status, {
    res: new Response(
      JSON.stringify({ type: `urn:catalog:problem:${code}`, title: detail, status, detail, code }),
      {
        status,
        headers: { 'content-type': 'application/problem+json' },
      },
    ),
  })
}

async function readItem(body: Promise<unknown>): Promise<{ name: string; description: string }> {
  const input = (await body.catch(() => undefined)) as
    | { name?: unknown; description?: unknown }
    | undefined
  if (typeof input?.name !== 'string' || input.name.length === 0 || input.name.length > 200) {
    throw problem(400, 'validation_failed', 'name: a string of 1 to 200 characters is required')
  }
  const description = typeof input.description === 'string' ? input.description.slice(0, 2000) : ''
  return { name: input.name, description }
}

export function createCatalogApp(verifier: Verifier): Hono<AuthEnv> {
  const store = new Map<Kind, Map<string, Item>>(KINDS.map((k) => [k, new Map()]))
  const app = new Hono<AuthEnv>()

  app.use(
    auth({
      verifier,
      publicRoutes: [
        { method: 'GET', path: '/health' },
        { method: 'GET', path: '/search' },
        ...KINDS.flatMap((k) => [
          { method: 'GET', path: `/${k}` },
          { method: 'GET', path: `/${k}/*` },
        ]),
      ],
    }),
  )

  // The revocation feed's state too: a stale feed is worth an alert (README, "tessera/verify").
  app.get('/health', (c) =>
    c.json({ status: 'ok', revocations: verifier.revocationStatus() ?? null }),
  )

  app.get('/search', (c) => {
    const q = (c.req.query('q') ?? '').toLowerCase()
    const hits = KINDS.flatMap((kind) =>
      [...store.get(kind)!.values()]
        .filter(
          (item) =>
            item.name.toLowerCase().includes(q) || item.description.toLowerCase().includes(q),
        )
        .map((item) => ({ kind, ...item })),
    )
    return c.json({ results: hits })
  })

  for (const kind of KINDS) {
    const items = store.get(kind)!
    const find = (id: string) => {
      const item = items.get(id)
      if (item === undefined) throw problem(404, 'not_found', `No such ${kind.slice(0, -1)}`)
      return item
    }
    app.get(`/${kind}`, (c) => c.json({ [kind]: [...items.values()] }))
    app.get(`/${kind}/:id`, (c) => c.json(find(c.req.param('id'))))
    app.post(`/${kind}`, requireAuth(), requireScope('write'), async (c) => {
      const fields = await readItem(c.req.json())
      const item: Item = {
        id: randomUUID(),
        ...fields,
        owner: c.get('auth')!.sub,
        created_at: new Date().toISOString(),
      }
      items.set(item.id, item)
      return c.json(item, 201)
    })
    app.put(`/${kind}/:id`, requireAuth(), requireScope('write'), async (c) => {
      const item = { ...find(c.req.param('id')), ...(await readItem(c.req.json())) }
      items.set(item.id, item)
      return c.json(item)
    })
    app.delete(`/${kind}/:id`, requireAuth(), requireScope('write'), (c) => {
      find(c.req.param('id'))
      items.delete(c.req.param('id'))
      return c.body(null, 204)
    })
  }

  // Uploading a run's data is what a stolen password must not allow: it needs the `write` scope
  // and a session that passed a second factor (README, "Second factors").
  app.post('/runs/:id/files', requireAuth(), requireScope('write'), requireMfa(), async (c) => {
    const run = store.get('runs')!.get(c.req.param('id'))
    if (run === undefined) throw problem(404, 'not_found', 'No such run')
    const bytes = (await c.req.arrayBuffer()).byteLength
    return c.json({ run: run.id, bytes, uploaded_by: c.get('auth')!.sub }, 201)
  })

  // Heavy compute is for verified academic accounts (and the platform's superusers) only.
  app.post(
    '/runs/:id/analysis',
    requireVerified(),
    requireAccountType('academic', 'superuser'),
    (c) => {
      const run = store.get('runs')!.get(c.req.param('id'))
      if (run === undefined) throw problem(404, 'not_found', 'No such run')
      return c.json({ run: run.id, status: 'queued', requested_by: c.get('auth')!.sub }, 202)
    },
  )

  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse()
    console.error(error)
    return c.json({ code: 'internal_error', status: 500 }, 500)
  })
  return app
}
