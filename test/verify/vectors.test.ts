/**
 * The official PASETO v4 and PASERK k4 test vectors (paseto-standard/test-vectors), kept in
 * test/vectors with their licence (see test/vectors/README.md), so every checkout runs them.
 */

import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { importPublicKey, verifyV4Public } from '../../src/paseto/ed25519.js'
import {
  decodePublicPaserk,
  decodeSecretPaserk,
  encodePublicPaserk,
  encodeSecretPaserk,
  publicKeyId,
} from '../../src/paseto/paserk.js'
import { importSecretKey, signV4Public } from '../../src/tokens/sign.js'
import { TokenError, verifyAccessToken } from '../../src/verify/index.js'

const VECTORS = path.resolve(import.meta.dirname, '../vectors')

interface Vector {
  name: string
  'expect-fail': boolean
  token?: string
  key?: string | null
  'public-key'?: string | null
  'secret-key'?: string
  payload?: string | null
  footer?: string
  'implicit-assertion'?: string
  paserk?: string | null
}

function load(file: string): Vector[] {
  return (JSON.parse(readFileSync(path.join(VECTORS, file), 'utf8')) as { tests: Vector[] }).tests
}

const hex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'))
const utf8 = (text: string) => new TextEncoder().encode(text)
/** The vectors' tokens expire at 2022-01-01T00:00:00Z. */
const BEFORE_EXPIRY = new Date('2021-06-01T00:00:00Z')

const v4 = load('v4.json')
const signed = v4.filter((t) => t.name.startsWith('4-S-'))
const failing = v4.filter((t) => t['expect-fail'])
const local = v4.filter((t) => t.name.startsWith('4-E-'))
/** The Ed25519 key pair of the 4-S-* vectors. */
const vectorPublicKey = signed[0]?.['public-key'] ?? ''

describe('official v4.public vectors', () => {
  it('has the vectors it expects', () => {
    expect(signed.map((t) => t.name)).toEqual(['4-S-1', '4-S-2', '4-S-3'])
    expect(failing.length).toBeGreaterThanOrEqual(5)
  })

  for (const t of signed) {
    it(`${t.name} verifies to the vector's payload and footer`, async () => {
      const key = importPublicKey(hex(t['public-key']!))
      const result = await verifyV4Public(key, t.token!, {
        now: BEFORE_EXPIRY,
        implicitAssertion: utf8(t['implicit-assertion']!),
      })
      expect(result.claims).toEqual(JSON.parse(t.payload!))
      expect(new TextDecoder().decode(result.footer)).toBe(t.footer)
      const payload = Buffer.from(t.token!.split('.')[2]!, 'base64url')
      expect(payload.subarray(0, -64).toString()).toBe(t.payload)
    })

    it(`${t.name} fails with another implicit assertion and after expiry`, async () => {
      const key = importPublicKey(hex(t['public-key']!))
      await expect(
        verifyV4Public(key, t.token!, { now: BEFORE_EXPIRY, implicitAssertion: utf8('other') }),
      ).rejects.toThrow()
      await expect(
        verifyV4Public(key, t.token!, {
          now: new Date('2022-01-01T00:00:01Z'),
          implicitAssertion: utf8(t['implicit-assertion']!),
        }),
      ).rejects.toThrow()
    })

    it(`${t.name} is reproduced exactly by signV4Public (Ed25519 is deterministic)`, async () => {
      const key = importSecretKey(hex(t['secret-key']!))
      const token = await signV4Public(key, JSON.parse(t.payload!), utf8(t.footer!), {
        implicitAssertion: utf8(t['implicit-assertion']!),
      })
      expect(token).toBe(t.token)
    })
  }

  for (const t of failing) {
    it(`${t.name} is refused by verifyV4Public and verifyAccessToken`, async () => {
      const key = importPublicKey(hex(t['public-key'] ?? vectorPublicKey))
      await expect(
        verifyV4Public(key, t.token!, {
          now: BEFORE_EXPIRY,
          implicitAssertion: utf8(t['implicit-assertion'] ?? ''),
        }),
      ).rejects.toThrow()
      const error = await verifyAccessToken(t.token!, () => key, {
        issuer: 'any',
        audience: 'any',
        now: () => BEFORE_EXPIRY.getTime(),
      }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(TokenError)
    })
  }

  it('v4.local vectors are never accepted as public tokens', async () => {
    const key = importPublicKey(hex(vectorPublicKey))
    for (const t of local) {
      await expect(verifyV4Public(key, t.token!, { now: BEFORE_EXPIRY })).rejects.toThrow()
      const error = await verifyAccessToken(t.token!, () => key, {
        issuer: 'any',
        audience: 'any',
      }).catch((e: unknown) => e)
      expect((error as TokenError).reason).toBe('unsupported_token')
    }
  })

  it('the signed vectors are not Tessera access tokens (no k4.pid kid in the footer)', async () => {
    const key = importPublicKey(hex(vectorPublicKey))
    for (const t of signed) {
      const error = await verifyAccessToken(t.token!, () => key, {
        issuer: 'any',
        audience: 'any',
        now: () => BEFORE_EXPIRY.getTime(),
      }).catch((e: unknown) => e)
      expect((error as TokenError).reason).toBe('bad_footer')
    }
  })
})

describe('official PASERK k4 vectors', () => {
  for (const t of load('paserk/k4.public.json')) {
    it(`${t.name}`, () => {
      if (t['expect-fail']) {
        expect(() => encodePublicPaserk(hex(t.key!))).toThrow()
        return
      }
      expect(encodePublicPaserk(hex(t.key!))).toBe(t.paserk)
      expect(decodePublicPaserk(t.paserk!)).toEqual(hex(t.key!))
    })
  }

  for (const t of load('paserk/k4.pid.json')) {
    it(`${t.name}`, () => {
      if (t['expect-fail']) {
        expect(() => publicKeyId(encodePublicPaserk(hex(t.key!)))).toThrow()
        return
      }
      expect(publicKeyId(encodePublicPaserk(hex(t.key!)))).toBe(t.paserk)
    })
  }

  for (const t of load('paserk/k4.secret.json')) {
    it(`${t.name}`, () => {
      if (t['expect-fail']) {
        expect(() => encodeSecretPaserk(hex(t.key!))).toThrow()
        expect(() => importSecretKey(hex(t.key!))).toThrow()
        return
      }
      expect(encodeSecretPaserk(hex(t.key!))).toBe(t.paserk)
      const decoded = decodeSecretPaserk(t.paserk!)
      expect(decoded).toEqual(hex(t.key!))
      expect(decoded.subarray(32)).toEqual(hex(t['public-key']!))
      // The private key node:crypto imports derives the vector's public key.
      const derived = createPublicKey(importSecretKey(decoded).keyObject).export({ format: 'jwk' })
      expect(Buffer.from(derived.x!, 'base64url')).toEqual(Buffer.from(t['public-key']!, 'hex'))
    })
  }
})
