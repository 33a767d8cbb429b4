import type { Context } from 'hono'
import * as v from 'valibot'
import { TesseraError } from '../errors.js'
import { hasControlCharacters, hasPasswordControlCharacters } from '../text.js'

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i

/**
 * Reads a JSON body and validates it. Wrong content type is 415, malformed JSON and schema
 * failures are 400 `validation_failed` naming each field. Unknown keys are dropped by the
 * schemas (so `__proto__` and friends never reach the domain).
 */
export async function readJson<S extends v.GenericSchema>(
  c: Context,
  schema: S,
): Promise<v.InferOutput<S>> {
  const type = c.req.header('content-type') ?? ''
  if (!JSON_TYPE.test(type)) {
    throw new TesseraError('unsupported_media_type', 'Send the body as application/json')
  }
  return validate(schema, parseJson(await c.req.text()))
}

/**
 * readJson for an optional body: an empty body (no bytes, whatever the content type) is `{}`;
 * any other body follows readJson's rules.
 */
export async function readOptionalJson<S extends v.GenericSchema>(
  c: Context,
  schema: S,
): Promise<v.InferOutput<S>> {
  const text = await c.req.text()
  if (text === '') return validate(schema, {})
  const type = c.req.header('content-type') ?? ''
  if (!JSON_TYPE.test(type)) {
    throw new TesseraError('unsupported_media_type', 'Send the body as application/json')
  }
  return validate(schema, parseJson(text))
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new TesseraError('validation_failed', 'The request body is not valid JSON')
  }
}

export function validate<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, input, { abortPipeEarly: true })
  if (result.success) return result.output
  const errors = result.issues.map((issue) => ({
    field: v.getDotPath(issue) ?? '(body)',
    message: issue.message,
  }))
  const detail = errors.map((e) => `${e.field}: ${e.message}`).join('; ')
  throw new TesseraError('validation_failed', detail, { errors })
}

/**
 * Every text field the API accepts refuses control characters (src/text.ts): PostgreSQL cannot
 * store NUL, and bidi overrides make a name read as another.
 */
export const noControlCharacters = v.check<string, string>(
  (s) => !hasControlCharacters(s),
  'must not contain control characters',
)

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * A path parameter that names a row by its id (always a UUID): anything else cannot name a row,
 * so it is 404 before the database is asked (and no NUL or other stray text reaches a query).
 */
export function uuidParam(value: string, what: string): string {
  if (!UUID.test(value)) throw new TesseraError('not_found', `No such ${what}`)
  return value
}

// Field schemas shared by the routes. Limits bound the work done before any hashing. The
// registration address syntax is the domain's (accounts/email.ts): the CLI checks it too.
export { emailField } from '../accounts/email.js'
/** Login accepts any string so that a malformed address reads like an unknown one. */
export const loginEmailField = v.pipe(
  v.string('must be a string'),
  // Login trims later (normalizeEmail); surrounding whitespace must keep working here too.
  v.check((s) => !hasControlCharacters(s.trim()), 'must not contain control characters'),
  v.nonEmpty('is required'),
  v.maxLength(254, 'must be at most 254 characters'),
)
/**
 * A password reset token (src/accounts/password-reset.ts) as sent: bounded and URL-safe, so a
 * stray value is refused before it is hashed; whether it is a live token is the domain's question.
 */
export const resetTokenField = v.pipe(
  v.string('must be a string'),
  v.nonEmpty('is required'),
  v.maxLength(128, 'must be at most 128 characters'),
  v.regex(/^[A-Za-z0-9_-]+$/, 'must be a reset code from the mail'),
)
export const passwordField = v.pipe(
  v.string('must be a string'),
  v.check((s) => !hasPasswordControlCharacters(s), 'must not contain control characters'),
  v.nonEmpty('is required'),
  // 1024 code points can take 2048 UTF-16 units; the policy counts code points precisely.
  v.maxLength(4096, 'must be at most 1024 characters'),
)
export const displayNameField = v.nullish(
  v.pipe(
    v.string('must be a string'),
    v.trim(),
    noControlCharacters,
    v.maxLength(100, 'must be at most 100 characters'),
    v.transform((s) => (s === '' ? null : s)),
  ),
)
export const refreshTokenField = v.pipe(
  v.string('must be a string'),
  noControlCharacters,
  v.nonEmpty('is required'),
  v.maxLength(512, 'must be at most 512 characters'),
)

/**
 * Reads an OAuth-style body: `application/x-www-form-urlencoded` as RFC 6749 and RFC 8628 send
 * it, or JSON; anything else is 415. A form parameter given twice is refused (RFC 6749 §3.2:
 * "MUST NOT be included more than once"), naming it.
 */
export async function readFormOrJson<S extends v.GenericSchema>(
  c: Context,
  schema: S,
): Promise<v.InferOutput<S>> {
  const type = c.req.header('content-type') ?? ''
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(type)) return readJson(c, schema)
  const form = new URLSearchParams(await c.req.text())
  const fields: Record<string, string> = {}
  for (const [name, value] of form) {
    if (Object.hasOwn(fields, name)) {
      throw new TesseraError('validation_failed', `${name}: must be given once`, {
        errors: [{ field: name, message: 'must be given once' }],
      })
    }
    fields[name] = value
  }
  return validate(schema, fields)
}
