/**
 * The verify part of `npm run bench`: `verifyAccessToken` against a raw `crypto.verify` of the
 * same signature, in this process, in alternated rounds (bench/alternated.ts). The ratio is the
 * figure that counts (docs/performance.md asks for 0.9). Run alone with
 * `npx tsx bench/verify-ratio.ts`: no build, no server, about 12 s.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { importPublicKey } from '../src/paseto/ed25519.js'
import { v4PublicPreAuth } from '../src/paseto/pae.js'
import { encodePublicPaserk, publicKeyId } from '../src/paseto/paserk.js'
import { formatPasetoTime } from '../src/paseto/time.js'
import { generateSigningKeyPair, importSecretKey, signV4Public } from '../src/tokens/sign.js'
import { verifyAccessToken } from '../src/verify/token.js'
import { alternatedRates } from './alternated.js'

/** Verifications per second, raw and through `verifyAccessToken`, and their ratio. */
export async function measureVerifyRatio(): Promise<{ raw: number; ours: number; ratio: number }> {
  const { publicKey, secretKey } = generateSigningKeyPair()
  const kid = publicKeyId(encodePublicPaserk(publicKey))
  const key = importPublicKey(publicKey)
  const now = Date.now()
  const token = await signV4Public(
    importSecretKey(secretKey),
    {
      iss: 'http://localhost:8000',
      sub: 'u',
      aud: 'tessera',
      jti: 'j',
      sid: 's',
      acct: 'regular',
      verified: false,
      email: 'a@example.org',
      iat: formatPasetoTime(now),
      nbf: formatPasetoTime(now),
      exp: formatPasetoTime(now + 900_000),
    },
    Buffer.from(JSON.stringify({ kid })),
  )
  const [, , payloadB64, footerB64] = token.split('.') as [string, string, string, string]
  const payload = Buffer.from(payloadB64, 'base64url')
  const message = payload.subarray(0, -64)
  const signature = payload.subarray(-64)
  const pae = v4PublicPreAuth(message, Buffer.from(footerB64, 'base64url'), new Uint8Array(0))
  const raw = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
    format: 'jwk',
  })
  const options = { issuer: 'http://localhost:8000', audience: 'tessera' }
  const { rates, ratios } = await alternatedRates([
    () => cryptoVerify(null, pae, raw, signature),
    () => verifyAccessToken(token, () => key, options),
  ])
  return { raw: rates[0] as number, ours: rates[1] as number, ratio: ratios[1] as number }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { raw, ours, ratio } = await measureVerifyRatio()
  const rates = `crypto.verify ${raw.toFixed(0)}/s, verifyAccessToken ${ours.toFixed(0)}/s`
  console.log(`${rates}, ratio ${ratio.toFixed(3)}`)
}
