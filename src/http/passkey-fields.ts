import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server'
import * as v from 'valibot'
import { noControlCharacters } from './body.js'

// The fields of the passkey routes (README, "Passkeys"). The authenticator's answers are
// checked for shape and size only: @simplewebauthn/server reads and verifies them. Unknown keys
// are dropped, so nothing but what the library reads reaches it.

/** base64url of at most `max` characters (a credential id is at most 1023 bytes). */
const base64url = (max: number) =>
  v.pipe(
    v.string('must be a string'),
    v.maxLength(max, `must be at most ${max} characters`),
    v.regex(/^[A-Za-z0-9_-]*={0,2}$/, 'must be base64url'),
  )

const extensionResults = v.optional(
  v.object({ credProps: v.optional(v.object({ rk: v.optional(v.boolean()) })) }),
  {},
)
const attachment = v.optional(v.picklist(['platform', 'cross-platform'], 'must be an attachment'))
const transports = v.optional(
  v.pipe(
    v.array(v.pipe(v.string(), v.maxLength(32, 'is too long')), 'must be an array'),
    v.maxLength(10, 'must name at most 10 transports'),
  ),
)

/** What `startRegistration()` of @simplewebauthn/browser answers. */
export const registrationResponseField = v.pipe(
  v.object({
    id: base64url(1400),
    rawId: base64url(1400),
    type: v.literal('public-key', 'must be public-key'),
    response: v.object({
      clientDataJSON: base64url(4096),
      attestationObject: base64url(16_384),
      transports,
      publicKeyAlgorithm: v.optional(v.number()),
      publicKey: v.optional(base64url(4096)),
      authenticatorData: v.optional(base64url(8192)),
    }),
    authenticatorAttachment: attachment,
    clientExtensionResults: extensionResults,
  }),
  v.transform((r) => r as RegistrationResponseJSON),
)

/** What `startAuthentication()` of @simplewebauthn/browser answers. */
export const authenticationResponseField = v.pipe(
  v.object({
    id: base64url(1400),
    rawId: base64url(1400),
    type: v.literal('public-key', 'must be public-key'),
    response: v.object({
      clientDataJSON: base64url(4096),
      authenticatorData: base64url(8192),
      signature: base64url(2048),
      userHandle: v.optional(base64url(128)),
    }),
    authenticatorAttachment: attachment,
    clientExtensionResults: extensionResults,
  }),
  v.transform((r) => r as AuthenticationResponseJSON),
)

/** The handle `…/options` answered with the options. */
export const challengeField = v.pipe(
  v.string('must be a string'),
  v.nonEmpty('is required'),
  v.maxLength(64, 'must be at most 64 characters'),
)

export const passkeyNameField = v.pipe(
  v.string('must be a string'),
  v.trim(),
  noControlCharacters,
  v.nonEmpty('is required'),
  v.maxLength(64, 'must be at most 64 characters'),
)

/**
 * A form's `response` field: the authenticator's answer as JSON text (the pages' passkey script
 * puts it there), parsed and checked as `schema`.
 */
export function formResponseField<S extends v.GenericSchema>(schema: S) {
  return v.pipe(
    v.string('must be a string'),
    v.nonEmpty('is required: this form needs the passkey script'),
    v.maxLength(40_000, 'is too long'),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      try {
        return JSON.parse(dataset.value) as unknown
      } catch {
        addIssue({ message: 'must be JSON' })
        return NEVER
      }
    }),
    schema,
  )
}
