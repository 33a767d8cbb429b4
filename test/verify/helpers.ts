/** Shared setup for the verifier's tests: a signing key, a key set, tokens built by hand. */
import { sign } from 'node:crypto'
import { type JsonValue, PAE } from 'paseto'
import { expect } from 'vitest'
import { importPublicKey } from '../../src/paseto/ed25519.js'
import { encodePublicPaserk } from '../../src/paseto/paserk.js'
import { formatPasetoTime } from '../../src/paseto/time.js'
import { generateSigningKeyPair, importSecretKey, signV4Public } from '../../src/tokens/sign.js'
import {
  type KeyResolver,
  type PublicKey,
  publicKeyId,
  TokenError,
  type TokenErrorReason,
  type VerifyOptions,
  verifyAccessToken,
} from '../../src/verify/index.js'

export const ISSUER = 'https://id.example.org'
export const AUDIENCE = 'tessera'
/** The frozen clock: 2026-05-01T12:00:00Z. */
export const NOW = Date.UTC(2026, 4, 1, 12, 0, 0)
export const TTL_MS = 15 * 60 * 1000

export const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
export const b64u = (bytes: Uint8Array | string): string =>
  Buffer.from(typeof bytes === 'string' ? utf8(bytes) : bytes).toString('base64url')

export interface SigningKey {
  raw: { publicKey: Uint8Array; secretKey: Uint8Array }
  publicKey: PublicKey
  paserk: string
  kid: string
}

export function makeSigningKey(): SigningKey {
  const raw = generateSigningKeyPair()
  const paserk = encodePublicPaserk(raw.publicKey)
  return { raw, publicKey: importPublicKey(raw.publicKey), paserk, kid: publicKeyId(paserk) }
}

/** The key Tessera signs with in these tests, and a key set that knows only it. */
export const signer = makeSigningKey()
export const resolveKey: KeyResolver = (kid) => (kid === signer.kid ? signer.publicKey : undefined)
export const verifyOptions: VerifyOptions = {
  issuer: ISSUER,
  audience: AUDIENCE,
  now: () => NOW,
}

/** Valid access-token claims at NOW; `undefined` in `overrides` removes a claim. */
export function accessClaims(
  overrides: Record<string, JsonValue | undefined> = {},
): Record<string, JsonValue> {
  const claims: Record<string, JsonValue | undefined> = {
    iss: ISSUER,
    sub: '0196a1b2-0000-7000-8000-000000000001',
    aud: AUDIENCE,
    iat: formatPasetoTime(NOW),
    nbf: formatPasetoTime(NOW),
    exp: formatPasetoTime(NOW + TTL_MS),
    jti: '0196a1b2-0000-7000-8000-0000000000aa',
    sid: '0196a1b2-0000-7000-8000-0000000000bb',
    acct: 'academic',
    verified: true,
    email: 'ada@example.org',
    ...overrides,
  }
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name]
  return claims as Record<string, JsonValue>
}

export const kidFooter = (kid: string = signer.kid): string => JSON.stringify({ kid })

/** A token made the way Tessera makes them: signV4Public with a `{"kid"}` footer. */
export async function issue(
  overrides: Record<string, JsonValue | undefined> = {},
  footer: string = kidFooter(),
): Promise<string> {
  const key = importSecretKey(signer.raw.secretKey)
  return signV4Public(key, accessClaims(overrides), utf8(footer))
}

/**
 * A token built by hand, independently of src/: any header, any payload text (duplicate keys,
 * bad claim formats that paseto's signer would refuse), any footer text, signed with Ed25519 over
 * paseto's own PAE. v1/v2 headers use the three-piece PAE of those versions.
 */
export function handMade(
  payloadText: string | Uint8Array,
  footerText: string | Uint8Array,
  { header = 'v4.public.', secretKey = signer.raw.secretKey } = {},
): string {
  const message = typeof payloadText === 'string' ? utf8(payloadText) : payloadText
  const footer = typeof footerText === 'string' ? utf8(footerText) : footerText
  const pieces = [utf8(header), message, footer]
  if (!/^v[12]\./i.test(header)) pieces.push(new Uint8Array(0))
  const privateKey = importSecretKey(secretKey).keyObject
  const signature = sign(null, PAE(pieces), privateKey)
  const body = header + b64u(Buffer.concat([message, signature]))
  return footer.byteLength === 0 ? body : `${body}.${b64u(footer)}`
}

/** Runs verifyAccessToken, expects a TokenError, and returns its reason. */
export async function refusal(
  token: string,
  options: VerifyOptions = verifyOptions,
  resolver: KeyResolver = resolveKey,
): Promise<TokenErrorReason> {
  const error = await verifyAccessToken(token, resolver, options).then(
    () => undefined,
    (e: unknown) => e,
  )
  const shown = String(token).slice(0, 60)
  expect(error, `expected ${shown}... to be refused`).toBeInstanceOf(TokenError)
  return (error as TokenError).reason
}

/** The segments of a token with a footer. */
export function segments(token: string): { header: string; payload: string; footer: string } {
  const [version, purpose, payload, footer] = token.split('.')
  return { header: `${version}.${purpose}.`, payload: payload!, footer: footer ?? '' }
}
