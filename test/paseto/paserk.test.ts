import { describe, expect, it } from 'vitest'
import {
  decodePublicPaserk,
  decodeSecretPaserk,
  encodePublicPaserk,
  encodeSecretPaserk,
  publicKeyId,
} from '../../src/paseto/paserk.js'
import { generateSigningKeyPair } from '../../src/tokens/sign.js'

const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')
const pair = generateSigningKeyPair()
const publicPaserk = encodePublicPaserk(pair.publicKey)
const secretPaserk = encodeSecretPaserk(pair.secretKey)

describe('PASERK k4.public and k4.secret decode only their exact canonical form', () => {
  it('round-trips generated keys', () => {
    expect(decodePublicPaserk(publicPaserk)).toEqual(pair.publicKey)
    expect(decodeSecretPaserk(secretPaserk)).toEqual(pair.secretKey)
    expect(publicPaserk).toMatch(/^k4\.public\.[A-Za-z0-9_-]{43}$/)
    expect(secretPaserk).toMatch(/^k4\.secret\.[A-Za-z0-9_-]{86}$/)
  })

  it('refuses other prefixes, non-canonical base64url and other lengths (k4.public)', () => {
    const body = publicPaserk.slice('k4.public.'.length)
    // A 32-byte key is 43 characters: the last carries 4 zero bits, so 'A'|1 = 'B' differs.
    const trailing = body.slice(0, -1) + (body.at(-1) === 'A' ? 'B' : 'A')
    const bad = [
      `k3.public.${body}`,
      `k2.public.${body}`,
      `K4.PUBLIC.${body}`,
      `k4.secret.${body}`,
      `k4.local.${body}`,
      `k4.pid.${body}`,
      `k4.public${body}`,
      `k4.public.${body}=`,
      ` k4.public.${body}`,
      `k4.public.${body} `,
      `k4.public.${body}\n`,
      `k4.public.${body.replace(/^./, '+')}`,
      `k4.public.${body.replace(/^./, '/')}`,
      `k4.public.${b64u(new Uint8Array(31))}`,
      `k4.public.${b64u(new Uint8Array(33))}`,
      `k4.public.${b64u(new Uint8Array(49))}`,
      'k4.public.',
      '',
    ]
    // Only a trailing-bits variant whose decoding is unchanged is a canonical-form test.
    if (Buffer.from(trailing, 'base64url').equals(Buffer.from(body, 'base64url'))) {
      bad.push(`k4.public.${trailing}`)
    }
    for (const paserk of bad) expect(() => decodePublicPaserk(paserk), paserk).toThrow(TypeError)
    for (const notString of [undefined, null, 1, {}, pair.publicKey]) {
      expect(() => decodePublicPaserk(notString as unknown as string)).toThrow(TypeError)
    }
  })

  it('non-zero trailing bits are refused', () => {
    const zeros = `k4.public.${b64u(new Uint8Array(32))}`
    expect(zeros).toBe('k4.public.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')
    for (const last of ['B', 'C', 'D', 'P']) {
      expect(() => decodePublicPaserk(zeros.slice(0, -1) + last)).toThrow(TypeError)
    }
    // 43 characters carry 258 bits: the last one's low 2 bits are spare, its high 4 are data.
    expect(decodePublicPaserk(`${zeros.slice(0, -1)}E`)[31]).toBe(1)
  })

  it("refuses a k4.secret whose public half is not the seed's", () => {
    const other = generateSigningKeyPair()
    const mixed = new Uint8Array(64)
    mixed.set(pair.secretKey.subarray(0, 32), 0)
    mixed.set(other.publicKey, 32)
    expect(() => encodeSecretPaserk(mixed)).toThrow(TypeError)
    expect(() => decodeSecretPaserk(`k4.secret.${b64u(mixed)}`)).toThrow(TypeError)
    for (const length of [0, 32, 63, 65]) {
      expect(() => encodeSecretPaserk(new Uint8Array(length))).toThrow(TypeError)
      const paserk = `k4.secret.${b64u(new Uint8Array(length))}`
      expect(() => decodeSecretPaserk(paserk)).toThrow(TypeError)
    }
    expect(() => decodeSecretPaserk(`k4.public.${secretPaserk.slice(10)}`)).toThrow(TypeError)
    expect(() => decodeSecretPaserk(`${secretPaserk}==`)).toThrow(TypeError)
  })

  it('encodes only 32-byte public keys', () => {
    for (const length of [0, 31, 33, 49, 64]) {
      expect(() => encodePublicPaserk(new Uint8Array(length))).toThrow(TypeError)
    }
  })
})

describe('k4.pid is BLAKE2b-264 over "k4.pid." and the k4.public PASERK', () => {
  it('is 44 base64url characters (33 bytes) and depends on every key byte', () => {
    const id = publicKeyId(publicPaserk)
    expect(id).toMatch(/^k4\.pid\.[A-Za-z0-9_-]{44}$/)
    const flipped = Uint8Array.from(pair.publicKey)
    flipped[31] = flipped[31]! ^ 1
    expect(publicKeyId(encodePublicPaserk(flipped))).not.toBe(id)
  })

  it('refuses anything but a valid k4.public PASERK', () => {
    const bad = [secretPaserk, `${publicPaserk}=`, 'k4.public.', publicPaserk.toUpperCase()]
    for (const paserk of bad) {
      expect(() => publicKeyId(paserk)).toThrow(TypeError)
    }
  })
})
