/**
 * `verifyRevocationDocument`: every way a feed document can be wrong is refused
 * (docs/revocation.md, "The feed"), in the manner of the access-token tests next to it: documents
 * are signed here with the test key, so each rule is tried in isolation.
 */
import { sign as cryptoSign } from 'node:crypto'
import type { JsonValue } from 'paseto'
import { describe, expect, it } from 'vitest'
import { v4PublicPreAuth } from '../../src/paseto/pae.js'
import { formatPasetoTime } from '../../src/paseto/time.js'
import { importSecretKey, signV4Public } from '../../src/tokens/sign.js'
import {
  RevocationDocumentError,
  type TokenError,
  verifyAccessToken,
  verifyRevocationDocument,
} from '../../src/verify/index.js'
import { REVOCATION_DOCUMENT_ASSERTION } from '../../src/verify/revocation-document.js'
import { revocationHash } from '../../src/verify/revocation-list.js'
import {
  b64u,
  ISSUER,
  issue,
  kidFooter,
  makeSigningKey,
  NOW,
  resolveKey,
  segments,
  signer,
  utf8,
  verifyOptions,
} from './helpers.js'

const SID = revocationHash('sid', '0196a1b2-0000-7000-8000-0000000000bb')
const SUB = revocationHash('sub', '0196a1b2-0000-7000-8000-000000000001')

function documentClaims(overrides: Record<string, JsonValue | undefined> = {}) {
  const claims: Record<string, JsonValue | undefined> = {
    iss: ISSUER,
    iat: formatPasetoTime(NOW),
    exp: formatPasetoTime(NOW + 60_000),
    after: 4,
    next: 7,
    more: false,
    ttl: 900,
    entries: [
      { seq: 5, sid: SID, at: NOW / 1000 },
      { seq: 6, sub: SUB, at: NOW / 1000 },
      { seq: 7, kid: signer.kid, at: NOW / 1000 },
    ],
    ...overrides,
  }
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name]
  return claims as Record<string, JsonValue>
}

/** A document as Tessera signs one (src/revocations/feed.ts). */
function sign(
  overrides: Record<string, JsonValue | undefined> = {},
  { key = signer, assertion = REVOCATION_DOCUMENT_ASSERTION, footer = kidFooter() } = {},
): Promise<string> {
  return signV4Public(importSecretKey(key.raw.secretKey), documentClaims(overrides), utf8(footer), {
    implicitAssertion: assertion,
  })
}

/** Any payload text, signed with the feed's implicit assertion. */
function signText(text: string): string {
  const message = utf8(text)
  const footer = utf8(kidFooter())
  const pae = v4PublicPreAuth(message, footer, REVOCATION_DOCUMENT_ASSERTION)
  const signature = cryptoSign(null, pae, importSecretKey(signer.raw.secretKey).keyObject)
  return `v4.public.${b64u(Buffer.concat([message, signature]))}.${b64u(footer)}`
}

const open = (token: string, options = {}) =>
  verifyRevocationDocument(token, resolveKey, { issuer: ISSUER, now: () => NOW, ...options })

async function refused(token: unknown, options = {}): Promise<string> {
  const error = await open(token as string, options).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error, `expected ${String(token).slice(0, 50)}... to be refused`).toBeInstanceOf(
    RevocationDocumentError,
  )
  return (error as Error).message
}

describe('verifyRevocationDocument', () => {
  it('opens a document Tessera signs', async () => {
    const doc = await open(await sign())
    expect(doc).toEqual({
      after: 4,
      next: 7,
      more: false,
      ttl: 900,
      issuedAt: NOW,
      expiresAt: NOW + 60_000,
      entries: [
        { seq: 5, sid: SID, at: NOW / 1000 },
        { seq: 6, sub: SUB, at: NOW / 1000 },
        { seq: 7, kid: signer.kid, at: NOW / 1000 },
      ],
    })
  })

  it('refuses what is not a document: types, framing, footer', async () => {
    const good = await sign()
    const { header, payload, footer } = segments(good)
    for (const value of [undefined, null, 42, {}, '', 'garbage', 'x'.repeat(600 * 1024)]) {
      await refused(value)
    }
    await refused(`v4.local.${payload}.${footer}`)
    await refused(`${header}${payload}`)
    await refused(`${header}${payload}.${footer}.extra`)
    await refused(`${header}${payload}=.${footer}`)
    await refused(`${header}${payload}.${b64u('{"kid":"k4.pid.short"}')}`)
    await refused(`${header}${payload}.${b64u('not json')}`)
  })

  it('refuses a forged, cut, altered or re-signed document', async () => {
    const good = await sign()
    const { header, payload, footer } = segments(good)
    // Cut short anywhere: the signature no longer covers what is left.
    for (const cut of [10, 100, payload.length - 1]) {
      expect(await refused(`${header}${payload.slice(0, cut)}.${footer}`)).toMatch(
        /signature|canonical|base64url/,
      )
    }
    // The entries dropped by a relay, signature kept.
    const bytes = Buffer.from(payload, 'base64url')
    const signature = bytes.subarray(-64)
    const emptied = Buffer.from(JSON.stringify(documentClaims({ entries: [], next: 4 })))
    expect(await refused(`${header}${b64u(Buffer.concat([emptied, signature]))}.${footer}`)).toBe(
      'signature does not verify',
    )
    // One bit flipped.
    const flipped = Buffer.from(bytes)
    flipped[20] = flipped[20]! ^ 1
    expect(await refused(`${header}${b64u(flipped)}.${footer}`)).toBe('signature does not verify')
    // Signed by someone else: under their own kid (unknown here), or claiming Tessera's.
    const intruder = makeSigningKey()
    expect(await refused(await sign({}, { key: intruder, footer: kidFooter(intruder.kid) }))).toBe(
      'signed with an unknown key',
    )
    expect(await refused(await sign({}, { key: intruder }))).toBe('signature does not verify')
  })

  it('an access token never passes for a document, nor a document for a token', async () => {
    expect(await refused(await issue())).toBe('signature does not verify')
    // Even with a document's claims: only the implicit assertion tells them apart.
    expect(await refused(await sign({}, { assertion: new Uint8Array(0) }))).toBe(
      'signature does not verify',
    )
    const asToken = await verifyAccessToken(await sign(), resolveKey, verifyOptions).catch(
      (e: unknown) => e,
    )
    expect((asToken as TokenError).reason).toBe('bad_signature')
  })

  it('refuses another issuer, an expired document and one from the future', async () => {
    expect(await refused(await sign({ iss: 'https://evil.example' }))).toBe('unexpected "iss"')
    const good = await sign()
    expect(await refused(good, { now: () => NOW + 60_000 + 30_001 })).toBe('document has expired')
    await open(good, { now: () => NOW + 60_000 + 30_000 })
    expect(await refused(good, { now: () => NOW - 30_001 })).toBe(
      'document was issued in the future',
    )
    expect(await refused(good, { now: () => NOW + 60_001, clockToleranceSeconds: 0 })).toBe(
      'document has expired',
    )
    const long = await sign({ exp: formatPasetoTime(NOW + 301_000) })
    expect(await refused(long)).toBe('document lifetime out of bounds')
    for (const times of [{ iat: undefined }, { exp: '2026-05-01T12:00:00.000Z' }, { iat: 5 }]) {
      expect(await refused(await sign(times))).toBe('"iat" and "exp" must be times')
    }
  })

  it('refuses content that breaks the format', async () => {
    const cases: Array<Record<string, JsonValue | undefined>> = [
      { after: -1 },
      { after: '4' },
      { after: 1.5 },
      { next: 3 },
      { next: undefined },
      { more: 'no' },
      { ttl: 0 },
      { ttl: undefined },
      { entries: 'none' },
      { entries: [{ seq: 5, sid: SID, at: 1 }, 'x'], next: 5 },
      // Out of order, duplicated, outside (after, next].
      {
        entries: [
          { seq: 6, sid: SID, at: 1 },
          { seq: 5, sid: SID, at: 1 },
        ],
        next: 6,
      },
      {
        entries: [
          { seq: 5, sid: SID, at: 1 },
          { seq: 5, sid: SID, at: 1 },
        ],
        next: 5,
      },
      { entries: [{ seq: 4, sid: SID, at: 1 }], next: 4 },
      { entries: [{ seq: 8, sid: SID, at: 1 }], next: 7 },
      // `next` must be the last cursor (or `after` when there are none).
      { entries: [{ seq: 5, sid: SID, at: 1 }], next: 7 },
      { entries: [], next: 7 },
      { entries: [{ seq: 5, sid: 'short', at: 1 }], next: 5 },
      { entries: [{ seq: 5, sub: `${SUB}x`, at: 1 }], next: 5 },
      { entries: [{ seq: 5, kid: 'k4.pid.nope', at: 1 }], next: 5 },
      { entries: [{ seq: 5, sid: SID, sub: SUB, at: 1 }], next: 5 },
      { entries: [{ seq: 5, sid: SID, at: -1 }], next: 5 },
      { entries: [{ seq: 5, sid: SID }], next: 5 },
    ]
    for (const overrides of cases) await refused(await sign(overrides))
    // Duplicate keys, as PASETO requires of every payload (signed by hand: signV4Public would
    // not write them).
    const text = JSON.stringify(documentClaims()).replace(
      '"more":false',
      '"more":false,"more":true',
    )
    expect(await refused(signText(text))).toBe('payload is not a JSON object with unique keys')
    expect(await refused(signText('[1, 2]'))).toBe('payload is not a JSON object with unique keys')
    await open(signText(JSON.stringify(documentClaims())))
  })

  it('skips entries of a kind it does not know (a newer Tessera)', async () => {
    const doc = await open(
      await sign({
        entries: [
          { seq: 5, jti: 'something new', at: 1 },
          { seq: 6, sid: SID, at: 1 },
        ],
        next: 6,
      }),
    )
    expect(doc.entries).toEqual([{ seq: 6, sid: SID, at: 1 }])
  })
})
