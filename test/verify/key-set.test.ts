/**
 * The remote key set against a real Tessera (real server, real SQLite database, real HTTP). The
 * requests to `/v1/keys` are counted by wrapping the global fetch passed in as the `fetch` option;
 * time moves through the `now` option, never by sleeping.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rotateSigningKey } from '../../src/keys/rotation.js'
import { encodePublicPaserk, encodeSecretPaserk } from '../../src/paseto/paserk.js'
import { formatPasetoTime } from '../../src/paseto/time.js'
import { generateSigningKeyPair } from '../../src/tokens/sign.js'
import {
  createLocalKeySet,
  createRemoteKeySet,
  createVerifier,
  importPublicPaserk,
  KeySetUnavailableError,
  publicKeyId,
  TokenError,
  type TokenErrorReason,
  type Verifier,
} from '../../src/verify/index.js'
import { makeTestApp, type TestApp, testClock } from '../support/app.js'
import { PASSWORD, registerAndLogin } from '../support/users.js'
import { AUDIENCE, accessClaims, ISSUER, issue, kidFooter, NOW, signer } from './helpers.js'

interface PublishedKeyBody {
  kid: string
  paserk: string
  status: string
  created_at: string
}

/** A fetch that counts the requests it passes on, and may rewrite the answer. */
function countingFetch(rewrite?: (res: Response) => Promise<Response>) {
  const wrapped = Object.assign(
    async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      wrapped.count += 1
      const res = await fetch(input, init)
      return rewrite === undefined ? res : rewrite(res)
    },
    { count: 0 },
  )
  return wrapped
}

/** Replaces the `keys` array of a /v1/keys response, keeping its status and headers. */
function rewriteKeys(edit: (keys: unknown[]) => unknown[]) {
  return async (res: Response): Promise<Response> => {
    const body = (await res.json()) as { keys: unknown[] }
    const headers = new Headers(res.headers)
    headers.delete('content-length')
    return new Response(JSON.stringify({ keys: edit(body.keys) }), { status: res.status, headers })
  }
}

const randomKid = (): string => `k4.pid.${randomBytes(33).toString('base64url')}`

/** A token with a well-formed but made-up `kid`, signed by a key Tessera never published. */
function forgedToken(app: TestApp, kid = randomKid()): Promise<string> {
  const { issuer, audience } = app.server.tessera.config
  const now = app.clock()
  const times = {
    iat: formatPasetoTime(now),
    nbf: formatPasetoTime(now),
    exp: formatPasetoTime(now + 600_000),
  }
  return issue(accessClaims({ iss: issuer, aud: audience, ...times }), kidFooter(kid))
}

function kidOf(token: string): string {
  const footer = token.split('.')[3]!
  return (JSON.parse(Buffer.from(footer, 'base64url').toString('utf8')) as { kid: string }).kid
}

async function publishedKeys(app: TestApp): Promise<PublishedKeyBody[]> {
  const res = await app.request('/v1/keys')
  expect(res.status).toBe(200)
  return ((await res.json()) as { keys: PublishedKeyBody[] }).keys
}

async function refusal(verifier: Verifier, token: string): Promise<TokenErrorReason> {
  const error = await verifier.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(TokenError)
  return (error as TokenError).reason
}

/** A loopback URL on which nothing listens. */
async function deadUrl(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}/v1/keys`
}

describe('remote key set against a real Tessera', () => {
  let app: TestApp
  let activeKid: string
  let accessToken: string

  beforeAll(async () => {
    app = await makeTestApp()
    ;[{ kid: activeKid }] = (await publishedKeys(app)) as [PublishedKeyBody]
    accessToken = (await registerAndLogin(app)).tokens.access_token
  })
  afterAll(() => app.close())

  const verifierFor = (
    fetchKeys: typeof fetch,
    extra: { now?: () => number; cooldownMs?: number } = {},
  ) =>
    createVerifier(
      { keysUrl: `${app.url}/v1/keys` },
      {
        issuer: app.server.tessera.config.issuer,
        audience: app.server.tessera.config.audience,
        fetch: fetchKeys,
        ...extra,
      },
    )

  it('fetches once and answers later lookups of known kids from the cache', async () => {
    const fetchKeys = countingFetch()
    const keySet = createRemoteKeySet({ url: `${app.url}/v1/keys`, fetch: fetchKeys })
    const keys = await Promise.all(Array.from({ length: 20 }, () => keySet.resolve(activeKid)))
    for (const key of keys) expect(key).toBe(keys[0])
    expect(keys[0]?.keyObject.asymmetricKeyType).toBe('ed25519')
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(1)
  })

  it('verifies a real Tessera access token with one fetch for many verifications', async () => {
    const fetchKeys = countingFetch()
    const verifier = verifierFor(fetchKeys)
    for (let i = 0; i < 10; i++) {
      const claims = await verifier.verify(accessToken)
      expect(claims.iss).toBe(app.server.tessera.config.issuer)
    }
    expect(fetchKeys.count).toBe(1)
  })

  it('refetches for unknown kids at most once per cooldown, however many are forged', async () => {
    const clock = testClock()
    const fetchKeys = countingFetch()
    const verifier = verifierFor(fetchKeys, { now: clock })
    await verifier.verify(accessToken)
    expect(fetchKeys.count).toBe(1)

    const flood = await Promise.all(Array.from({ length: 100 }, () => forgedToken(app)))
    // Within the cooldown of the first fetch: no refetch at all.
    for (const reason of await Promise.all(flood.map((t) => refusal(verifier, t)))) {
      expect(reason).toBe('unknown_key')
    }
    expect(fetchKeys.count).toBe(1)

    // Cooldown over: 100 concurrent unknown kids share exactly one refetch ...
    clock.advance(30_000)
    const reasons = await Promise.all(flood.map((t) => refusal(verifier, t)))
    expect(new Set(reasons)).toEqual(new Set(['unknown_key']))
    expect(fetchKeys.count).toBe(2)

    // ... and start the next cooldown: another flood 29 s later costs nothing.
    clock.advance(29_000)
    await Promise.all(flood.map((t) => refusal(verifier, t)))
    expect(fetchKeys.count).toBe(2)
    // Known kids are still served from the cache meanwhile.
    await verifier.verify(accessToken)
    expect(fetchKeys.count).toBe(2)
  })

  it('honours the max-age Tessera sends (KEYS_MAX_AGE, 300 s by default)', async () => {
    const clock = testClock()
    const fetchKeys = countingFetch()
    const keySet = createRemoteKeySet({ url: `${app.url}/v1/keys`, fetch: fetchKeys, now: clock })
    const res = await app.request('/v1/keys')
    expect(res.headers.get('cache-control')).toMatch(/max-age=300\b/)

    await keySet.resolve(activeKid)
    clock.advance(299_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(1)
    clock.advance(1_000)
    expect(await keySet.resolve(activeKid)).toBeDefined()
    expect(fetchKeys.count).toBe(2)
    clock.advance(299_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(2)
  })

  it('counts the Age a shared cache reports against max-age (RFC 9111 §4.2.3)', async () => {
    // A CDN in front of /v1/keys kept its copy for 280 of the 300 s: 20 s of freshness remain,
    // so a key Tessera publishes is seen within max-age however many caches are on the way.
    const clock = testClock()
    const fetchKeys = countingFetch(async (res) => {
      const headers = new Headers(res.headers)
      headers.set('age', '280')
      return new Response(res.body, { status: res.status, headers })
    })
    const keySet = createRemoteKeySet({
      url: `${app.url}/v1/keys`,
      fetch: fetchKeys,
      now: clock,
      cooldownMs: 1_000,
    })
    await keySet.resolve(activeKid)
    clock.advance(19_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(1)
    clock.advance(1_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(2)
    // An Age past max-age leaves nothing fresh; one that is not a number of seconds is ignored.
    for (const [age, fetches] of [
      ['900', 3],
      ['soon', 1],
    ] as const) {
      const withAge = countingFetch(async (res) => {
        const headers = new Headers(res.headers)
        headers.set('age', age)
        return new Response(res.body, { status: res.status, headers })
      })
      const cached = createRemoteKeySet({
        url: `${app.url}/v1/keys`,
        fetch: withAge,
        now: clock,
        cooldownMs: 0,
      })
      for (let i = 0; i < 3; i++) await cached.resolve(activeKid)
      expect(withAge.count, `Age: ${age}`).toBe(fetches)
    }
  })

  it('uses maxAgeMs when the response has no Cache-Control max-age', async () => {
    const clock = testClock()
    const fetchKeys = countingFetch(async (res) => {
      const headers = new Headers(res.headers)
      headers.delete('cache-control')
      return new Response(res.body, { status: res.status, headers })
    })
    const keySet = createRemoteKeySet({
      url: `${app.url}/v1/keys`,
      fetch: fetchKeys,
      now: clock,
      maxAgeMs: 60_000,
    })
    await keySet.resolve(activeKid)
    clock.advance(59_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(1)
    clock.advance(1_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(2)
  })

  it('defaults to a 10 minute cache without max-age', async () => {
    const clock = testClock()
    const fetchKeys = countingFetch(async (res) => new Response(res.body, { status: 200 }))
    const keySet = createRemoteKeySet({ url: `${app.url}/v1/keys`, fetch: fetchKeys, now: clock })
    await keySet.resolve(activeKid)
    clock.advance(599_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(1)
    clock.advance(1_000)
    await keySet.resolve(activeKid)
    expect(fetchKeys.count).toBe(2)
  })

  it('ignores an entry whose kid is not the PASERK id of its key; keeps the rest', async () => {
    // The helpers' signing key plays the attacker: its public key is listed under Tessera's kid,
    // under a made-up kid, and in entries that are broken in other ways.
    const attackerKid = randomKid()
    const fetchKeys = countingFetch(
      rewriteKeys((keys) => [
        {
          kid: activeKid,
          paserk: signer.paserk,
          status: 'active',
          created_at: '2026-01-01T00:00:00Z',
        },
        {
          kid: attackerKid,
          paserk: signer.paserk,
          status: 'active',
          created_at: '2026-01-01T00:00:00Z',
        },
        {
          kid: signer.kid,
          paserk: signer.paserk,
          status: 'revoked',
          created_at: '2026-01-01T00:00:00Z',
        },
        { kid: signer.kid, paserk: `${signer.paserk}=`, status: 'active' },
        { kid: 'k3.pid.x', paserk: 'k3.public.AAAA', status: 'active' },
        { kid: signer.kid, paserk: signer.paserk.toUpperCase(), status: 'active' },
        { kid: 42, paserk: null, status: 'active' },
        null,
        'k4.public.AAAA',
        ...keys,
      ]),
    )
    const verifier = verifierFor(fetchKeys)
    expect((await verifier.verify(accessToken)).iss).toBe(app.server.tessera.config.issuer)
    // Signed by the attacker and naming Tessera's kid: Tessera's key was used, not the listed one.
    expect(await refusal(verifier, await forgedToken(app, activeKid))).toBe('bad_signature')
    // The attacker's key filed under a made-up kid was never imported.
    expect(await refusal(verifier, await forgedToken(app, attackerKid))).toBe('unknown_key')
    // A correct kid for the attacker's key, but with a status verifiers must not accept.
    expect(await refusal(verifier, await forgedToken(app, signer.kid))).toBe('unknown_key')
    expect(fetchKeys.count).toBe(1)
  })

  it("accepts a correct kid/paserk pair served beside Tessera's own keys", async () => {
    const fetchKeys = countingFetch(
      rewriteKeys((keys) => [
        ...keys,
        { kid: signer.kid, paserk: signer.paserk, status: 'retiring' },
      ]),
    )
    const verifier = verifierFor(fetchKeys)
    expect((await verifier.verify(await forgedToken(app, signer.kid))).sub).toBeTypeOf('string')
    await verifier.verify(accessToken)
    expect(fetchKeys.count).toBe(1)
  })

  it('reads at most 32 entries', async () => {
    const filler = Array.from({ length: 32 }, () => {
      const paserk = encodePublicPaserk(generateSigningKeyPair().publicKey)
      return { kid: publicKeyId(paserk), paserk, status: 'retiring' }
    })
    const keySet = createRemoteKeySet({
      url: `${app.url}/v1/keys`,
      fetch: countingFetch(rewriteKeys((keys) => [...filler, ...keys])),
    })
    expect(await keySet.resolve(filler[31]!.kid)).toBeDefined()
    expect(await keySet.resolve(activeKid)).toBeUndefined()
  })

  it('refuses a response over 64 KiB, and one without a usable key', async () => {
    for (const rewrite of [
      rewriteKeys((keys) => [...keys, { kid: 'x', paserk: 'y', padding: 'z'.repeat(64 * 1024) }]),
      rewriteKeys(() => [{ kid: activeKid, paserk: signer.paserk, status: 'active' }]),
      async () => new Response('{"keys": {}}', { status: 200 }),
      async () => new Response('not json', { status: 200 }),
      async () => new Response('{"keys": []}', { status: 500 }),
    ]) {
      const keySet = createRemoteKeySet({
        url: `${app.url}/v1/keys`,
        fetch: countingFetch(rewrite),
      })
      await expect(keySet.resolve(activeKid)).rejects.toBeInstanceOf(KeySetUnavailableError)
      await expect(keySet.reload()).rejects.toThrow()
    }
  })

  it('does not follow redirects', async () => {
    const keySet = createRemoteKeySet({
      url: `${app.url}/v1/keys`,
      fetch: async () =>
        new Response(null, { status: 302, headers: { location: `${app.url}/v1/keys` } }),
    })
    await expect(keySet.resolve(activeKid)).rejects.toBeInstanceOf(KeySetUnavailableError)
  })

  it('reload() fetches at once, ignoring cache and cooldown', async () => {
    const clock = testClock()
    const fetchKeys = countingFetch()
    const keySet = createRemoteKeySet({ url: `${app.url}/v1/keys`, fetch: fetchKeys, now: clock })
    await keySet.resolve(activeKid)
    await keySet.reload()
    await Promise.all([keySet.reload(), keySet.reload()])
    expect(fetchKeys.count).toBe(3)
  })
})

describe('remote key set while Tessera is unreachable', () => {
  it('keeps serving the cached keys after Tessera goes away', async () => {
    const app = await makeTestApp()
    const clock = testClock()
    const fetchKeys = countingFetch()
    const { config } = app.server.tessera
    const verifier = createVerifier(
      { keysUrl: `${app.url}/v1/keys` },
      { issuer: config.issuer, audience: config.audience, fetch: fetchKeys, now: clock },
    )
    let token: string
    try {
      token = (await registerAndLogin(app)).tokens.access_token
      await verifier.verify(token)
      expect(fetchKeys.count).toBe(1)
    } finally {
      await app.close()
    }

    // Stale and past the cooldown: the refetch fails, the old keys stay.
    clock.advance(301_000)
    expect((await verifier.verify(token)).email).toMatch(/@example\.org$/)
    expect(fetchKeys.count).toBe(2)
    // No retry inside the cooldown, whatever arrives.
    expect(await refusal(verifier, await forgedToken(app))).toBe('unknown_key')
    await verifier.verify(token)
    expect(fetchKeys.count).toBe(2)
    // After the cooldown one more attempt, which fails quietly too.
    clock.advance(30_000)
    await verifier.verify(token)
    expect(fetchKeys.count).toBe(3)
  })

  it('throws KeySetUnavailableError until a fetch succeeds, retrying at most 1/s', async () => {
    const clock = testClock()
    const fetchKeys = countingFetch()
    const keySet = createRemoteKeySet({ url: await deadUrl(), fetch: fetchKeys, now: clock })
    const errors = await Promise.all(
      Array.from({ length: 10 }, () =>
        keySet.resolve(randomKid()).then(
          () => undefined,
          (e: unknown) => e,
        ),
      ),
    )
    for (const error of errors) {
      expect(error).toBeInstanceOf(KeySetUnavailableError)
      expect((error as Error).message).toMatch(/no key set fetched/)
      expect((error as Error).cause).toBeDefined()
    }
    expect(fetchKeys.count).toBe(1)
    await expect(keySet.resolve(randomKid())).rejects.toBeInstanceOf(KeySetUnavailableError)
    expect(fetchKeys.count).toBe(1)
    clock.advance(1_000)
    await expect(keySet.resolve(randomKid())).rejects.toBeInstanceOf(KeySetUnavailableError)
    expect(fetchKeys.count).toBe(2)
  })

  it('gives up on a fetch after timeoutMs', async () => {
    const stalled: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason))
      })
    const keySet = createRemoteKeySet({
      url: 'http://127.0.0.1:9/v1/keys',
      fetch: stalled,
      timeoutMs: 50,
    })
    const error = await keySet.resolve(randomKid()).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(KeySetUnavailableError)
    expect(((error as Error).cause as Error).name).toBe('TimeoutError')
  })
})

describe('key rotation', () => {
  it('accepts a token of the new key after one refetch, and still the old key', async () => {
    const app = await makeTestApp()
    try {
      const fetchKeys = countingFetch()
      const { config } = app.server.tessera
      // The verifier shares Tessera's clock, so "11 s later" is the same moment for both.
      const verifier = createVerifier(
        { keysUrl: `${app.url}/v1/keys` },
        { issuer: config.issuer, audience: config.audience, fetch: fetchKeys, now: app.clock },
      )
      const { email, tokens } = await registerAndLogin(app)
      await verifier.verify(tokens.access_token)
      expect(fetchKeys.count).toBe(1)

      const { kid: newKid, retired } = await rotateSigningKey(app.server.tessera)
      expect(retired).toBe(kidOf(tokens.access_token))
      // Tessera's replicas keep signing with a cached key for up to 10 s.
      app.clock.advance(11_000)
      const res = await app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } })
      const rotated = ((await res.json()) as { access_token: string }).access_token
      expect(kidOf(rotated)).toBe(newKid)

      // 11 s after the last fetch the cooldown still holds: the new kid is unknown for now.
      expect(await refusal(verifier, rotated)).toBe('unknown_key')
      expect(fetchKeys.count).toBe(1)

      app.clock.advance(20_000)
      expect((await verifier.verify(rotated)).email).toBe(email)
      expect(fetchKeys.count).toBe(2)
      // The retiring key is still published, so tokens it signed stay valid, without a fetch.
      await verifier.verify(tokens.access_token)
      await verifier.verify(rotated)
      expect(fetchKeys.count).toBe(2)
    } finally {
      await app.close()
    }
  })
})

describe('local key set', () => {
  it('resolves configured keys and nothing else', async () => {
    const keySet = createLocalKeySet([{ kid: signer.kid, paserk: signer.paserk }])
    expect(await keySet.resolve(signer.kid)).toBeDefined()
    expect(await keySet.resolve(randomKid())).toBeUndefined()
    await keySet.reload()
  })

  it('refuses a bad configuration at once', () => {
    const other = encodePublicPaserk(generateSigningKeyPair().publicKey)
    for (const entry of [
      { kid: signer.kid, paserk: other },
      { kid: randomKid(), paserk: signer.paserk },
      { kid: signer.kid, paserk: `${signer.paserk}=` },
      { kid: signer.kid, paserk: signer.paserk.replace('k4.public.', 'k3.public.') },
      { kid: signer.kid },
      null,
    ]) {
      expect(() => createLocalKeySet([entry as never])).toThrow(/keys\[0\]/)
    }
  })

  it('verifies through createVerifier({ keys })', async () => {
    const verifier = createVerifier(
      { keys: [{ kid: signer.kid, paserk: signer.paserk }] },
      { issuer: ISSUER, audience: AUDIENCE, now: () => NOW },
    )
    expect((await verifier.verify(await issue())).sub).toBeTypeOf('string')
    expect(await refusal(verifier, await issue({}, kidFooter(randomKid())))).toBe('unknown_key')
  })
  it('verifies through createVerifier({ keySet }) with keys from importPublicPaserk', async () => {
    const key = importPublicPaserk(signer.paserk)
    const keySet = {
      resolve: async (kid: string) => (kid === publicKeyId(signer.paserk) ? key : undefined),
      reload: async () => {},
    }
    const verifier = createVerifier(
      { keySet },
      { issuer: ISSUER, audience: AUDIENCE, now: () => NOW },
    )
    expect((await verifier.verify(await issue())).sub).toBeTypeOf('string')
    expect(await refusal(verifier, await issue({}, kidFooter(randomKid())))).toBe('unknown_key')
    const secret = encodeSecretPaserk(signer.raw.secretKey)
    for (const bad of [secret, `k4.public.${secret.slice(10)}`, `${signer.paserk}=`, '']) {
      expect(() => importPublicPaserk(bad), bad).toThrow(TypeError)
    }
  })
})
