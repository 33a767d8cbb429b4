import { expect } from 'vitest'
import type { RevocationLogTable } from '../../src/db/schema.js'
import {
  createRemoteKeySet,
  type RevocationDocument,
  verifyRevocationDocument,
} from '../../src/verify/index.js'
import { createSseParser, type ServerSentEvent } from '../../src/verify/sse.js'
import type { TestApp } from './app.js'

/** Tessera's test apps sign with this issuer (the default TESSERA_ISSUER). */
export const ISSUER = 'http://localhost:8000'

/** The claims of an access token (the payload minus its 64-byte signature), unverified. */
export function claimsOf(token: string): { sub: string; sid: string; iat: string; exp: string } {
  const payload = Buffer.from(token.split('.')[2]!, 'base64url')
  return JSON.parse(payload.subarray(0, -64).toString('utf8'))
}

/** The `kid` in a token's footer. */
export function kidOf(token: string): string {
  return (
    JSON.parse(Buffer.from(token.split('.')[3]!, 'base64url').toString('utf8')) as { kid: string }
  ).kid
}

/** Every row of the revocation log, in cursor order. */
export async function logRows(app: TestApp): Promise<RevocationLogTable[]> {
  const rows = await app.server.tessera.db
    .selectFrom('revocation_log')
    .selectAll()
    .orderBy('seq')
    .execute()
  return rows.map((row) => ({ ...row, seq: Number(row.seq), at: Number(row.at) }))
}

/** The status `/v1/authz` answers for a token, and the detail of a refusal. */
export async function authz(app: { request: TestApp['request'] }, token: string): Promise<string> {
  const res = await app.request('/v1/authz', { token })
  const body = (await res.json()) as { detail?: string }
  return res.status === 200 ? '200' : `${res.status} ${body.detail}`
}

export const REVOKED_AT_AUTHZ = '401 The access token is invalid (revoked)'

/**
 * Waits (polling, never a fixed sleep) until `probe` answers `expected`, at most `timeoutMs`:
 * the bound within which a revocation must arrive.
 */
export async function eventually<T>(
  probe: () => Promise<T>,
  expected: T,
  timeoutMs = 2_000,
): Promise<void> {
  await expect.poll(probe, { timeout: timeoutMs, interval: 20 }).toEqual(expected)
}

/** A key set over the app's published keys, for checking feed documents. */
export function appKeys(app: TestApp) {
  return createRemoteKeySet({ url: `${app.url}/v1/keys`, cooldownMs: 0 })
}

/** Verifies a feed document the way a verifier does, with the app's keys and clock. */
export async function openDocument(app: TestApp, token: string): Promise<RevocationDocument> {
  const keys = appKeys(app)
  return verifyRevocationDocument(token, (kid) => keys.resolve(kid), {
    issuer: ISSUER,
    now: app.clock,
  })
}

/** `GET /v1/revocations?after=` of the app, verified. */
export async function pull(app: TestApp, after: number): Promise<RevocationDocument> {
  const res = await app.request(`/v1/revocations?after=${after}`)
  expect(res.status, await res.clone().text()).toBe(200)
  return openDocument(app, ((await res.json()) as { document: string }).document)
}

/** An open event stream: its events as they arrive, and a way to drop the connection. */
export interface OpenStream {
  res: Response
  /** The next event (comments included, as event `comment`), waiting at most `timeoutMs`. */
  next(timeoutMs?: number): Promise<ServerSentEvent & { raw: string }>
  close(): void
}

/**
 * Opens `GET /v1/revocations/stream` (with `headers`, e.g. Last-Event-ID) and reads it with the
 * verifier's own SSE parser; comment lines (heartbeats) are reported as events named `comment`.
 */
export async function openStream(
  baseUrl: string,
  query = '',
  headers: Record<string, string> = {},
): Promise<OpenStream> {
  const controller = new AbortController()
  const res = await fetch(`${baseUrl}/v1/revocations/stream${query}`, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  })
  const queue: Array<ServerSentEvent & { raw: string }> = []
  let waiting: (() => void) | undefined
  let ended: unknown
  if (res.status === 200 && res.body !== null) {
    const parser = createSseParser(1 << 20)
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          for (const line of value.split('\n')) {
            if (line.startsWith(':')) {
              queue.push({ event: 'comment', data: line, lastEventId: undefined, raw: line })
            }
          }
          for (const event of parser.push(value)) queue.push({ ...event, raw: value })
          waiting?.()
        }
        ended = new Error('stream ended')
      } catch (error) {
        ended = error
      }
      waiting?.()
    })()
  }
  return {
    res,
    async next(timeoutMs = 5_000) {
      if (res.status !== 200) throw new Error(`the stream answered ${res.status}`)
      const deadline = Date.now() + timeoutMs
      while (queue.length === 0) {
        if (ended !== undefined) throw ended
        if (Date.now() > deadline) throw new Error('no event within the time allowed')
        await new Promise<void>((resolve) => {
          waiting = resolve
          setTimeout(resolve, 50)
        })
      }
      return queue.shift()!
    },
    close: () => controller.abort(),
  }
}

/** The next `revocations` event of a stream (skipping heartbeats), verified. */
export async function nextDocument(
  app: TestApp,
  stream: OpenStream,
  timeoutMs = 5_000,
): Promise<RevocationDocument & { id: string | undefined }> {
  for (;;) {
    const event = await stream.next(timeoutMs)
    if (event.event !== 'revocations') continue
    return { ...(await openDocument(app, event.data)), id: event.lastEventId }
  }
}
