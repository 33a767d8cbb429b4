import { PublicProtocol } from 'paseto'
import {
  ImportPublicKeyFactory as V2ImportPublicKey,
  ImportSecretKeyFactory as V2ImportSecretKey,
  SignFactory as V2Sign,
  VerifyFactory as V2Verify,
} from 'paseto/v2/public'
import { verify as pasetoTsVerify } from 'paseto-ts/v4'
import { describe, expect, it } from 'vitest'
import { verifyV4Public } from '../../src/paseto/ed25519.js'
import { formatPasetoTime } from '../../src/paseto/time.js'
import { importSecretKey, signV4Public } from '../../src/tokens/sign.js'
import { type KeyResolver, TokenError, verifyAccessToken } from '../../src/verify/index.js'
import {
  AUDIENCE,
  accessClaims,
  b64u,
  handMade,
  ISSUER,
  issue,
  kidFooter,
  makeSigningKey,
  NOW,
  refusal,
  resolveKey,
  segments,
  signer,
  TTL_MS,
  utf8,
  verifyOptions,
} from './helpers.js'

const at = (ms: number) => ({ ...verifyOptions, now: () => ms })
const time = formatPasetoTime

/** Flips one bit of the byte at `index` of a base64url segment and re-encodes it. */
function flipByte(segment: string, index: number): string {
  const bytes = Buffer.from(segment, 'base64url')
  bytes[index] = bytes[index]! ^ 0x01
  return bytes.toString('base64url')
}

/** A token (made by `make` with growing padding) whose `pick` segment has length % 4 === tail. */
async function withTail(tail: 2 | 3, pick: 'payload' | 'footer'): Promise<string> {
  for (let pad = 0; pad < 8; pad++) {
    const token =
      pick === 'payload'
        ? await issue({ pad: 'x'.repeat(pad) })
        : await issue({}, JSON.stringify({ kid: signer.kid, pad: 'x'.repeat(pad) }))
    if (segments(token)[pick].length % 4 === tail) return token
  }
  throw new Error('no padding gave the wanted length')
}

describe('a token Tessera signs', () => {
  it('verifies and yields exactly the profile claims and the kid', async () => {
    const token = await issue({ role: 'researcher', extra: { nested: [1, 2] } })
    const { claims, kid } = await verifyAccessToken(token, resolveKey, verifyOptions)
    expect(kid).toBe(signer.kid)
    expect(claims).toEqual({ ...accessClaims(), role: 'researcher' })
  })

  it('verifies without a role claim, and with an async key resolver', async () => {
    const token = await issue()
    const asyncResolver: KeyResolver = async (kid) => resolveKey(kid)
    const { claims } = await verifyAccessToken(token, asyncResolver, verifyOptions)
    expect(claims).toEqual(accessClaims())
    expect('role' in claims).toBe(false)
  })

  it('verifies with the independent paseto-ts implementation given the k4.public key', async () => {
    // paseto-ts checks exp against the real clock, so this token is issued now.
    const now = Date.now()
    const token = await issue({ iat: time(now), nbf: time(now), exp: time(now + TTL_MS) })
    const { payload, footer } = pasetoTsVerify(signer.paserk, token)
    const times = { iat: time(now), nbf: time(now), exp: time(now + TTL_MS) }
    expect(payload).toEqual(accessClaims(times))
    expect(footer).toEqual({ kid: signer.kid })
  })

  it('verifies with the paseto package framing (verifyV4Public) to the same claims', async () => {
    const token = await issue()
    const result = await verifyV4Public(signer.publicKey, token, { now: new Date(NOW) })
    expect(result.claims).toEqual(accessClaims())
    expect(new TextDecoder().decode(result.footer)).toBe(kidFooter())
  })
})

describe('a token altered after signing is a bad signature', () => {
  it('any changed payload byte', async () => {
    const token = await issue()
    const { header, payload, footer } = segments(token)
    const size = Buffer.from(payload, 'base64url').byteLength
    for (const index of [0, 1, 17, Math.floor(size / 2), size - 65]) {
      expect(await refusal(`${header}${flipByte(payload, index)}.${footer}`)).toBe('bad_signature')
    }
  })

  it('any changed signature byte', async () => {
    const token = await issue()
    const { header, payload, footer } = segments(token)
    const size = Buffer.from(payload, 'base64url').byteLength
    for (const index of [size - 64, size - 33, size - 1]) {
      expect(await refusal(`${header}${flipByte(payload, index)}.${footer}`)).toBe('bad_signature')
    }
  })

  it('a different footer naming the same kid', async () => {
    const token = await issue()
    const { header, payload } = segments(token)
    for (const footer of [
      JSON.stringify({ kid: signer.kid, x: 1 }),
      `{ "kid": "${signer.kid}" }`,
      `{"kid":"${signer.kid}"} `,
    ]) {
      expect(await refusal(`${header}${payload}.${b64u(footer)}`)).toBe('bad_signature')
    }
  })

  it('a token signed by another key that claims our kid', async () => {
    const attacker = makeSigningKey()
    const token = handMade(JSON.stringify(accessClaims()), kidFooter(), {
      secretKey: attacker.raw.secretKey,
    })
    expect(await refusal(token)).toBe('bad_signature')
  })
})

describe('keys come from the key set, by kid, never from the token', () => {
  it('an unknown kid is unknown_key', async () => {
    const other = makeSigningKey()
    const token = handMade(JSON.stringify(accessClaims()), kidFooter(other.kid), {
      secretKey: other.raw.secretKey,
    })
    expect(await refusal(token)).toBe('unknown_key')
  })

  it('a key carried in the footer is ignored: the kid alone picks the key', async () => {
    const attacker = makeSigningKey()
    const claims = JSON.stringify(accessClaims())
    for (const field of ['wpk', 'key', 'public_key', 'paserk', 'jwk']) {
      // Our kid with the attacker's key alongside: still checked with our key.
      const ours = JSON.stringify({ kid: signer.kid, [field]: attacker.paserk })
      const signedByAttacker = handMade(claims, ours, { secretKey: attacker.raw.secretKey })
      expect(await refusal(signedByAttacker)).toBe('bad_signature')
      // The attacker's kid and key: not in the key set.
      const theirs = JSON.stringify({ kid: attacker.kid, [field]: attacker.paserk })
      const selfSigned = handMade(claims, theirs, { secretKey: attacker.raw.secretKey })
      expect(await refusal(selfSigned)).toBe('unknown_key')
    }
  })

  it('a resolver failure propagates as it is, not as a token error', async () => {
    const token = await issue()
    const failing: KeyResolver = async () => {
      throw new Error('key set unreachable')
    }
    await expect(verifyAccessToken(token, failing, verifyOptions)).rejects.toThrow(
      'key set unreachable',
    )
  })

  it('a secret key returned by a resolver is refused, not used', async () => {
    const token = await issue()
    const secret = importSecretKey(signer.raw.secretKey)
    const wrong = (() => secret) as unknown as KeyResolver
    const error = await verifyAccessToken(token, wrong, verifyOptions).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    expect(error).not.toBeInstanceOf(TokenError)
  })
})

describe('only the exact v4.public header is accepted', () => {
  it('other versions, purposes and casings are unsupported_token', async () => {
    const payload = JSON.stringify(accessClaims())
    for (const header of [
      'v4.local.',
      'v3.public.',
      'v3.local.',
      'v2.public.',
      'v1.public.',
      'V4.public.',
      'v4.PUBLIC.',
      'V4.PUBLIC.',
      'v4.Public.',
      'v5.public.',
      'v4.secret.',
      'v04.public.',
    ]) {
      expect(await refusal(handMade(payload, kidFooter(), { header })), header).toBe(
        'unsupported_token',
      )
    }
  })

  it('a genuine v2.public token signed with the same Ed25519 key is refused', async () => {
    const v2 = new PublicProtocol(V2ImportSecretKey, V2ImportPublicKey, V2Sign, V2Verify)
    const secret = await v2.ImportSecretKey(`k2.secret.${b64u(signer.raw.secretKey)}`)
    const token = await v2.Sign(secret, accessClaims(), { footer: utf8(kidFooter()) })
    expect(token.startsWith('v2.public.')).toBe(true)
    // It is a valid token of its version, under the very key our key set holds.
    const publicV2 = await v2.ImportPublicKey(`k2.public.${b64u(signer.raw.publicKey)}`)
    await expect(v2.Verify(publicV2, token, { now: new Date(NOW) })).resolves.toBeDefined()
    expect(await refusal(token)).toBe('unsupported_token')
    await expect(verifyV4Public(signer.publicKey, token, { now: new Date(NOW) })).rejects.toThrow()
    // Relabelled as v4.public it fails the signature: v2 and v4 sign different inputs.
    const relabelled = token.replace(/^v2\.public\./, 'v4.public.')
    expect(await refusal(relabelled)).toBe('bad_signature')
  })
})

describe('framing: segments and canonical base64url', () => {
  it('garbage strings are malformed', async () => {
    const { footer } = segments(await issue())
    for (const garbage of [
      '',
      'x',
      'Bearer v4.public.abc',
      ' v4.public.abc.def',
      'v4.public',
      'v4public.abc.def',
      'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln',
      'k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8',
      '...',
      '\u0000',
      'v4.public.é.é',
      `v4.public..${footer}`,
    ]) {
      expect(await refusal(garbage), JSON.stringify(garbage)).toBe('malformed')
    }
    for (const notString of [undefined, null, 42, {}, ['v4.public.']]) {
      expect(await refusal(notString as unknown as string)).toBe('malformed')
    }
  })

  it('a token over 8 KiB is malformed, whatever it holds', async () => {
    const { footer } = segments(await issue())
    expect(await refusal(`v4.public.${'A'.repeat(9000)}.${footer}`)).toBe('malformed')
    expect(await refusal(`v4.public.${'A'.repeat(100_000)}`)).toBe('malformed')
    // Near the limit a real token still verifies.
    const big = await issue({ bulk: 'b'.repeat(5000) })
    expect(big.length).toBeGreaterThan(6000)
    expect(big.length).toBeLessThanOrEqual(8192)
    await expect(verifyAccessToken(big, resolveKey, verifyOptions)).resolves.toBeDefined()
    const tooBig = await issue({ bulk: 'b'.repeat(6200) })
    expect(tooBig.length).toBeGreaterThan(8192)
    expect(await refusal(tooBig)).toBe('malformed')
  })

  it('extra segments and a trailing empty footer segment are malformed', async () => {
    const token = await issue()
    const { header, payload, footer } = segments(token)
    for (const bad of [
      `${token}.`,
      `${token}.${footer}`,
      `${header}${payload}.`,
      `${header}${payload}..${footer}`,
      `${header}.${payload}.${footer}`,
    ]) {
      expect(await refusal(bad), bad.slice(-20)).toBe('malformed')
    }
  })

  it('a payload no longer than a signature is malformed', async () => {
    const { header, footer } = segments(await issue())
    for (const bytes of [1, 32, 63, 64]) {
      const payload = b64u(new Uint8Array(bytes).fill(7))
      expect(await refusal(`${header}${payload}.${footer}`)).toBe('malformed')
    }
  })

  it('padding, the +/ alphabet and whitespace are malformed, in payload and footer', async () => {
    const token = await issue()
    const { header, payload, footer } = segments(token)
    const variants = [
      `${header}${payload}=.${footer}`,
      `${header}${payload}==.${footer}`,
      `${header}${payload}.${footer}=`,
      `${header}+${payload.slice(1)}.${footer}`,
      `${header}/${payload.slice(1)}.${footer}`,
      `${header}${payload}.+${footer.slice(1)}`,
      `${header}${payload}./${footer.slice(1)}`,
      `${header}${payload.slice(0, 20)} ${payload.slice(20)}.${footer}`,
      `${header}${payload.slice(0, 20)}\n${payload.slice(20)}.${footer}`,
      `${header}${payload}.${footer}\n`,
      // One character too many: a length of 4n + 1 is never valid base64url.
      `${header}${payload}${'A'.repeat((5 - (payload.length % 4)) % 4)}.${footer}`,
    ]
    for (const bad of variants) expect(await refusal(bad)).toBe('malformed')
  })

  it('non-zero trailing bits are malformed, in payload and footer', async () => {
    for (const pick of ['payload', 'footer'] as const) {
      for (const tail of [2, 3] as const) {
        const token = await withTail(tail, pick)
        await expect(verifyAccessToken(token, resolveKey, verifyOptions)).resolves.toBeDefined()
        const parts = segments(token)
        const segment = parts[pick]
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
        const last = alphabet.indexOf(segment.at(-1)!)
        // The same bytes under Buffer's lenient decoder, but another string.
        const altered = segment.slice(0, -1) + alphabet[last | 1]
        expect(Buffer.from(altered, 'base64url')).toEqual(Buffer.from(segment, 'base64url'))
        const bad =
          pick === 'payload'
            ? `${parts.header}${altered}.${parts.footer}`
            : `${parts.header}${parts.payload}.${altered}`
        expect(await refusal(bad), `${pick} tail ${tail}`).toBe('malformed')
      }
    }
  })
})

describe('the footer: bounded, strict, kid only', () => {
  const claims = JSON.stringify(accessClaims())

  it('a token without a footer is bad_footer', async () => {
    expect(await refusal(handMade(claims, ''))).toBe('bad_footer')
  })

  it('a footer over 512 bytes is bad_footer; 512 bytes is fine', async () => {
    const base = JSON.stringify({ kid: signer.kid, pad: '' })
    const exact = JSON.stringify({ kid: signer.kid, pad: 'p'.repeat(512 - base.length) })
    expect(utf8(exact).byteLength).toBe(512)
    await expect(
      verifyAccessToken(handMade(claims, exact), resolveKey, verifyOptions),
    ).resolves.toBeDefined()
    const over = JSON.stringify({ kid: signer.kid, pad: 'p'.repeat(513 - base.length) })
    expect(await refusal(handMade(claims, over))).toBe('bad_footer')
    const huge = JSON.stringify({ kid: signer.kid, pad: 'p'.repeat(5000) })
    expect(await refusal(handMade(claims, huge))).toBe('bad_footer')
  })

  it('a footer nested deeper than 2 is bad_footer; 2 is fine', async () => {
    const two = JSON.stringify({ kid: signer.kid, a: { b: 1 } })
    await expect(
      verifyAccessToken(handMade(claims, two), resolveKey, verifyOptions),
    ).resolves.toBeDefined()
    for (const deep of [
      JSON.stringify({ kid: signer.kid, a: { b: { c: 1 } } }),
      JSON.stringify({ kid: signer.kid, a: [[1]] }),
      `{"kid":"${signer.kid}","a":${'['.repeat(200)}${']'.repeat(200)}}`,
    ]) {
      expect(await refusal(handMade(claims, deep))).toBe('bad_footer')
    }
  })

  it('a footer that is not a JSON object with one string k4.pid kid is bad_footer', async () => {
    const pid = signer.kid
    for (const footer of [
      'not json',
      "arbitrary-string-that-isn't-json",
      '[]',
      `["${pid}"]`,
      `"${pid}"`,
      'null',
      '{}',
      '{"kid":1}',
      '{"kid":null}',
      `{"kid":["${pid}"]}`,
      `{"KID":"${pid}"}`,
      `{"kid":"${pid}","kid":"${pid}"}`,
      `{"kid":"${pid}","\\u006bid":"${pid}"}`,
      `{"kid":"${pid}",}`,
      `{"kid":"${pid.slice(0, -1)}"}`,
      `{"kid":"${pid}A"}`,
      `{"kid":"${pid.replace('k4.pid.', 'k4.lid.')}"}`,
      `{"kid":"${pid.replace('k4.pid.', 'k3.pid.')}"}`,
      `{"kid":"${pid.slice(0, -1)}="}`,
      `{"kid":"${pid.slice(0, -1)}+"}`,
      `{"kid":" ${pid}"}`,
      '{"kid":"zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN"}',
    ]) {
      expect(await refusal(handMade(claims, footer)), footer).toBe('bad_footer')
    }
    const invalidUtf8 = new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])
    expect(await refusal(handMade(claims, invalidUtf8))).toBe('bad_footer')
  })
})

describe('the payload: a JSON object with unique keys, in Tessera profile', () => {
  const good = accessClaims()
  const entries = Object.entries(good).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
  const object = (...members: string[]) => `{${[...entries, ...members].join(',')}}`

  it('a hand-made token with the same claims verifies (the builder is sound)', async () => {
    const { claims } = await verifyAccessToken(
      handMade(object(), kidFooter()),
      resolveKey,
      verifyOptions,
    )
    expect(claims).toEqual(good)
  })

  it('duplicate keys at any depth are invalid_claims, even when signed', async () => {
    for (const payload of [
      object('"sub":"someone-else"'),
      object('"acct":"superuser"'),
      object('"\\u0073ub":"someone-else"'),
      object('"x":{"a":1,"a":2}'),
      object('"x":[{"a":1},{"b":1,"b":1}]'),
      object('"__proto__":{},"__proto__":{}'),
    ]) {
      expect(await refusal(handMade(payload, kidFooter())), payload.slice(-40)).toBe(
        'invalid_claims',
      )
    }
    // Keys that only look alike inside string values are not duplicates.
    const lookalike = object('"x":"{\\"sub\\":1,\\"sub\\":2}"')
    await expect(
      verifyAccessToken(handMade(lookalike, kidFooter()), resolveKey, verifyOptions),
    ).resolves.toBeDefined()
  })

  it('a payload not a UTF-8 JSON object, or nested deeper than 4, is invalid_claims', async () => {
    for (const payload of [
      '[]',
      `[${JSON.stringify(good)}]`,
      '"claims"',
      'null',
      '42',
      'not json',
      `${JSON.stringify(good)}x`,
      object('"x":{"a":{"b":{"c":{}}}}'),
      object('"x":[[[[]]]]'),
      object(`"x":${'['.repeat(1000)}${']'.repeat(1000)}`),
    ]) {
      expect(await refusal(handMade(payload, kidFooter())), payload.slice(0, 40)).toBe(
        'invalid_claims',
      )
    }
    const invalidUtf8 = Buffer.concat([
      utf8(object().slice(0, -1)),
      utf8(',"x":"'),
      Buffer.from([0xc3, 0x28]),
      utf8('"}'),
    ])
    expect(await refusal(handMade(invalidUtf8, kidFooter()))).toBe('invalid_claims')
    const fourDeep = handMade(object('"x":{"a":{"b":[]}}'), kidFooter())
    await expect(verifyAccessToken(fourDeep, resolveKey, verifyOptions)).resolves.toBeDefined()
  })

  it('every required claim missing is invalid_claims', async () => {
    const required = ['iss', 'sub', 'aud', 'iat', 'nbf', 'exp', 'jti', 'sid', 'acct', 'verified']
    for (const name of [...required, 'email']) {
      const token = handMade(JSON.stringify(accessClaims({ [name]: undefined })), kidFooter())
      expect(await refusal(token), name).toBe('invalid_claims')
    }
  })

  it('claims of the wrong type or value are invalid_claims', async () => {
    const bad: Array<[string, unknown]> = [
      ['iss', 1],
      ['iss', ''],
      ['iss', [ISSUER]],
      ['sub', 1],
      ['sub', ''],
      ['sub', null],
      ['aud', [AUDIENCE]],
      ['aud', { aud: AUDIENCE }],
      ['jti', 7],
      ['sid', false],
      ['email', null],
      ['acct', 'admin'],
      ['acct', 'Regular'],
      ['acct', ''],
      ['acct', ['regular']],
      ['verified', 'true'],
      ['verified', 1],
      ['verified', null],
      ['role', 1],
      ['role', null],
      ['role', ['researcher']],
    ]
    for (const [name, value] of bad) {
      const payload = JSON.stringify({ ...accessClaims(), [name]: value })
      const label = `${name}=${JSON.stringify(value)}`
      expect(await refusal(handMade(payload, kidFooter())), label).toBe('invalid_claims')
    }
  })

  it('exp, nbf and iat other than YYYY-MM-DDTHH:MM:SSZ are invalid_claims', async () => {
    const bad: unknown[] = [
      '2026-05-01T12:15:00.000Z',
      '2026-05-01T12:15:00.5Z',
      '2026-05-01T12:15:00+00:00',
      '2026-05-01T14:15:00+02:00',
      '2026-05-01T12:15:00-00:00',
      '2026-05-01 12:15:00Z',
      '2026-05-01t12:15:00z',
      '2026-05-01T12:15:00',
      '2026-05-01T12:15Z',
      '2026-5-1T12:15:00Z',
      '+002026-05-01T12:15:00Z',
      '2026-02-30T12:00:00Z',
      '2026-13-01T12:00:00Z',
      '2026-05-00T12:00:00Z',
      '2026-05-01T24:00:00Z',
      '2026-05-01T12:60:00Z',
      '2026-05-01T12:15:60Z',
      'tomorrow',
      '',
      1777637700,
      1777637700000,
      null,
      true,
      ['2026-05-01T12:15:00Z'],
    ]
    for (const name of ['exp', 'nbf', 'iat']) {
      for (const value of bad) {
        const payload = JSON.stringify({ ...accessClaims(), [name]: value })
        expect(await refusal(handMade(payload, kidFooter()), at(NOW)), `${name}=${value}`).toBe(
          'invalid_claims',
        )
      }
    }
  })
})

describe('time, issuer and audience', () => {
  it('expired after exp plus 30 s of tolerance', async () => {
    const token = await issue()
    const exp = NOW + TTL_MS
    await expect(verifyAccessToken(token, resolveKey, at(exp + 30_000))).resolves.toBeDefined()
    expect(await refusal(token, at(exp + 31_000))).toBe('expired')
    expect(await refusal(token, at(exp + 86_400_000))).toBe('expired')
    expect(await refusal(token, { ...at(exp + 1000), clockToleranceSeconds: 0 })).toBe('expired')
  })

  it('not yet valid before nbf minus 30 s of tolerance', async () => {
    const token = await issue({ nbf: time(NOW + 60_000) })
    await expect(verifyAccessToken(token, resolveKey, at(NOW + 30_000))).resolves.toBeDefined()
    expect(await refusal(token, at(NOW))).toBe('not_yet_valid')
    expect(await refusal(token, at(NOW + 29_000))).toBe('not_yet_valid')
  })

  it('issued in the future beyond the tolerance', async () => {
    const token = await issue({ iat: time(NOW + 60_000) })
    expect(await refusal(token, at(NOW))).toBe('issued_in_future')
    expect(await refusal(token, { ...at(NOW + 50_000), clockToleranceSeconds: 5 })).toBe(
      'issued_in_future',
    )
    await expect(verifyAccessToken(token, resolveKey, at(NOW + 30_000))).resolves.toBeDefined()
  })

  it('exp - iat over the maximum is lifetime_too_long: 86400 s by default, or as set', async () => {
    const day = 86_400_000
    const longLived = await issue({ exp: time(NOW + day + 1000) })
    expect(await refusal(longLived, at(NOW))).toBe('lifetime_too_long')
    expect(await refusal(await issue({ exp: time(NOW + 10 * 365 * day) }), at(NOW))).toBe(
      'lifetime_too_long',
    )
    await expect(
      verifyAccessToken(await issue({ exp: time(NOW + day) }), resolveKey, at(NOW)),
    ).resolves.toBeDefined()
    // A service that knows ACCESS_TOKEN_TTL (here 900 s) refuses anything longer.
    const tight = { ...at(NOW), maxLifetimeSeconds: TTL_MS / 1000 }
    await expect(verifyAccessToken(await issue(), resolveKey, tight)).resolves.toBeDefined()
    expect(await refusal(await issue({ exp: time(NOW + TTL_MS + 1000) }), tight)).toBe(
      'lifetime_too_long',
    )
  })

  it('a long exp is refused even with iat close to it (iat may not be in the future)', async () => {
    const hidden = await issue({
      iat: time(NOW + 364 * 86_400_000),
      exp: time(NOW + 365 * 86_400_000),
    })
    expect(await refusal(hidden, at(NOW))).toBe('issued_in_future')
  })

  it('maxLifetimeSeconds must be positive', async () => {
    await expect(
      verifyAccessToken(await issue(), resolveKey, { ...at(NOW), maxLifetimeSeconds: 0 }),
    ).rejects.toThrow(TypeError)
  })

  it('another issuer is wrong_issuer', async () => {
    for (const iss of ['https://evil.example', `${ISSUER}/`, ISSUER.toUpperCase(), `${ISSUER} `]) {
      expect(await refusal(await issue({ iss })), iss).toBe('wrong_issuer')
    }
    const otherIssuer = { ...verifyOptions, issuer: 'https://other.example' }
    expect(await refusal(await issue(), otherIssuer)).toBe('wrong_issuer')
  })

  it('another audience is wrong_audience', async () => {
    for (const aud of ['other-service', 'Tessera', `${AUDIENCE} `]) {
      expect(await refusal(await issue({ aud })), aud).toBe('wrong_audience')
    }
    expect(await refusal(await issue(), { ...verifyOptions, audience: 'billing' })).toBe(
      'wrong_audience',
    )
  })

  it('uses the real clock when no now is given', async () => {
    const now = Date.now()
    const token = await issue({ iat: time(now), nbf: time(now), exp: time(now + TTL_MS) })
    await expect(
      verifyAccessToken(token, resolveKey, { issuer: ISSUER, audience: AUDIENCE }),
    ).resolves.toBeDefined()
    expect(await refusal(await issue(), { issuer: ISSUER, audience: AUDIENCE })).toBe(
      now > NOW + TTL_MS + 30_000 ? 'expired' : 'not_yet_valid',
    )
  })
})

describe('signV4Public', () => {
  it("writes the caller's claims as given, adding no iat or exp", async () => {
    const claims = accessClaims({ iat: '2020-01-01T00:00:00Z', nbf: '2020-01-01T00:00:00Z' })
    const key = importSecretKey(signer.raw.secretKey)
    const token = await signV4Public(key, claims, utf8(kidFooter()))
    const payload = Buffer.from(segments(token).payload, 'base64url')
    expect(payload.subarray(0, -64).toString()).toBe(JSON.stringify(claims))
  })

  it('refuses claims without an exp string rather than defaulting it', async () => {
    const key = importSecretKey(signer.raw.secretKey)
    for (const exp of [undefined, 1777637700, null]) {
      const claims = accessClaims({ exp })
      await expect(signV4Public(key, claims, utf8(kidFooter()))).rejects.toThrow(TypeError)
    }
  })
})
