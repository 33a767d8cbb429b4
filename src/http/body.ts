import type { Context } from 'hono'
import * as v from 'valibot'
import { TesseraError } from '../errors.js'

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
  if (!/^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(type)) {
    throw new TesseraError('unsupported_media_type', 'Send the body as application/json')
  }
  let body: unknown
  try {
    body = JSON.parse(await c.req.text())
  } catch {
    throw new TesseraError('validation_failed', 'The request body is not valid JSON')
  }
  return validate(schema, body)
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

// Field schemas shared by the routes. Limits bound the work done before any hashing.
export const emailField = v.pipe(
  v.string('must be a string'),
  v.trim(),
  v.nonEmpty('is required'),
  v.maxLength(254, 'must be at most 254 characters'),
  v.email('must be an email address'),
)
/** Login accepts any string so that a malformed address reads like an unknown one. */
export const loginEmailField = v.pipe(
  v.string('must be a string'),
  v.nonEmpty('is required'),
  v.maxLength(254, 'must be at most 254 characters'),
)
export const passwordField = v.pipe(
  v.string('must be a string'),
  v.nonEmpty('is required'),
  // 1024 code points can take 2048 UTF-16 units; the policy counts code points precisely.
  v.maxLength(4096, 'must be at most 1024 characters'),
)
export const displayNameField = v.nullish(
  v.pipe(
    v.string('must be a string'),
    v.trim(),
    v.maxLength(100, 'must be at most 100 characters'),
    v.transform((s) => (s === '' ? null : s)),
  ),
)
export const refreshTokenField = v.pipe(
  v.string('must be a string'),
  v.nonEmpty('is required'),
  v.maxLength(512, 'must be at most 512 characters'),
)
