import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto'
import { isoCBOR } from '@simplewebauthn/server/helpers'

/**
 * A software WebAuthn authenticator for the tests that need no browser (the API on both dialects,
 * the openapi contract): one ES256 discoverable credential, "none" attestation, answers built as
 * a CTAP2 authenticator and a browser would build them (WebAuthn Level 3 §6.1, §6.5). The browser
 * tests use Chromium's own virtual authenticator instead (test/passkeys/chromium.test.ts).
 */
export class SoftwareAuthenticator {
  readonly credentialId = randomBytes(16)
  private readonly privateKey: KeyObject
  private readonly publicKey: KeyObject
  counter = 0
  userHandle: string | undefined

  constructor(
    /** The page origin the browser would report. */
    readonly origin: string,
    readonly options: { backupEligible?: boolean } = {},
  ) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    this.privateKey = pair.privateKey
    this.publicKey = pair.publicKey
  }

  get id(): string {
    return this.credentialId.toString('base64url')
  }

  private flags(attested: boolean): number {
    // UP, UV; BE and BS for a synced credential; AT when credential data follows.
    let flags = 0x01 | 0x04
    if (this.options.backupEligible === true) flags |= 0x08 | 0x10
    if (attested) flags |= 0x40
    return flags
  }

  private clientData(type: string, challenge: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin: this.origin, crossOrigin: false }))
  }

  private authData(rpId: string, attested: boolean): Buffer {
    const head = Buffer.alloc(37)
    createHash('sha256').update(rpId).digest().copy(head, 0)
    head[32] = this.flags(attested)
    head.writeUInt32BE(this.counter, 33)
    if (!attested) return head
    const jwk = this.publicKey.export({ format: 'jwk' })
    const cose = isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, new Uint8Array(Buffer.from(jwk.x!, 'base64url'))],
        [-3, new Uint8Array(Buffer.from(jwk.y!, 'base64url'))],
      ]),
    )
    const length = Buffer.alloc(2)
    length.writeUInt16BE(this.credentialId.length)
    return Buffer.concat([head, Buffer.alloc(16), length, this.credentialId, Buffer.from(cose)])
  }

  /** The answer to registration options (`navigator.credentials.create()`). */
  register(options: {
    challenge: string
    rp: { id?: string }
    user: { id: string }
  }): Record<string, unknown> {
    this.userHandle = options.user.id
    const authData = this.authData(options.rp.id!, true)
    const attestationObject = isoCBOR.encode(
      new Map<string, string | Map<string, string> | Uint8Array>([
        ['fmt', 'none'],
        ['attStmt', new Map<string, string>()],
        ['authData', new Uint8Array(authData)],
      ]),
    )
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: this.clientData('webauthn.create', options.challenge).toString('base64url'),
        attestationObject: Buffer.from(attestationObject).toString('base64url'),
        transports: ['internal'],
      },
      clientExtensionResults: {},
    }
  }

  /** The answer to authentication options (`navigator.credentials.get()`); counts a use. */
  assert(options: { challenge: string; rpId?: string }): Record<string, unknown> {
    this.counter += 1
    const authData = this.authData(options.rpId!, false)
    const clientData = this.clientData('webauthn.get', options.challenge)
    const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()])
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: clientData.toString('base64url'),
        authenticatorData: authData.toString('base64url'),
        signature: sign('sha256', signed, this.privateKey).toString('base64url'),
        ...(this.userHandle === undefined ? {} : { userHandle: this.userHandle }),
      },
      clientExtensionResults: {},
    }
  }
}
