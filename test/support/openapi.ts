import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Validator } from '@seriousme/openapi-schema-validator'
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js'
import _Ajv2020 from 'ajv/dist/2020.js'
import _addFormats from 'ajv-formats'
import { expect } from 'vitest'

/**
 * Checks HTTP responses against openapi.yaml: the status is documented for the operation, the
 * content type is one of the documented ones, the body validates against the documented schema
 * (JSON Schema 2020-12, the dialect of OpenAPI 3.1, with ajv), and the documented headers are
 * there and valid. Every check is recorded in `openApiCoverage`.
 */

// ajv and ajv-formats are CommonJS modules whose default export NodeNext types as the namespace.
const Ajv2020 = ((_Ajv2020 as unknown as { default?: unknown }).default ??
  _Ajv2020) as typeof _Ajv2020.default
const addFormats = ((_addFormats as unknown as { default?: unknown }).default ??
  _addFormats) as typeof _addFormats.default

export const OPENAPI_FILE = fileURLToPath(new URL('../../openapi.yaml', import.meta.url))

export const HTTP_METHODS = [
  'get',
  'put',
  'post',
  'delete',
  'options',
  'head',
  'patch',
  'trace',
] as const

type Json = Record<string, unknown>

export interface OpenApiDocument extends Json {
  openapi: string
  paths: Record<string, Record<string, unknown>>
  components: Record<string, Record<string, unknown>>
}

interface Loaded {
  document: OpenApiDocument
  /** The validator package's verdict on the document as a whole. */
  valid: boolean
  errors: unknown
  ajv: InstanceType<typeof Ajv2020>
}

/** The id under which the whole document is known to ajv; schemas are addressed by JSON pointer. */
const DOCUMENT_ID = 'urn:tessera:openapi'

/**
 * Keywords at the root of an OpenAPI document. Declared (as annotations that validate nothing) so
 * that ajv's strict mode, which otherwise catches misspelt schema keywords, accepts the document
 * as the resource every `$ref` resolves in.
 */
const OPENAPI_ROOT_KEYWORDS = [
  'openapi',
  'info',
  'jsonSchemaDialect',
  'servers',
  'paths',
  'webhooks',
  'components',
  'security',
  'tags',
  'externalDocs',
]
/** OpenAPI's own additions to schema objects (3.1 §4.8.24). */
const OPENAPI_SCHEMA_KEYWORDS = ['discriminator', 'xml', 'example']

let loading: Promise<Loaded> | undefined

/** Parses and validates openapi.yaml once per test file. */
export function loadOpenApi(): Promise<Loaded> {
  loading ??= (async () => {
    const validator = new Validator()
    const result = await validator.validate(readFileSync(OPENAPI_FILE, 'utf8'))
    const document = validator.specification as OpenApiDocument
    const ajv = new Ajv2020({
      strict: true,
      // `allOf: [{$ref: Problem}, {properties: ...}]` narrows without repeating `type`.
      strictTypes: false,
      allowUnionTypes: true,
      allErrors: true,
    })
    addFormats(ajv)
    ajv.addVocabulary([...OPENAPI_ROOT_KEYWORDS, ...OPENAPI_SCHEMA_KEYWORDS])
    ajv.addSchema(structuredClone(document), DOCUMENT_ID)
    return { document, valid: result.valid, errors: result.errors, ajv }
  })()
  return loading
}

/** `#/a/b~1c` style pointer of a list of keys (RFC 6901, percent-encoded for a URI fragment). */
export function pointer(keys: readonly string[]): string {
  return (
    '#' +
    keys.map((k) => `/${encodeURIComponent(k.replace(/~/g, '~0').replace(/\//g, '~1'))}`).join('')
  )
}

function at(document: unknown, keys: readonly string[]): unknown {
  let node = document
  for (const key of keys) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Json)[key]
  }
  return node
}

/** Follows a local `$ref` (responses, headers, ...), returning the object and where it lives. */
function deref(document: OpenApiDocument, keys: string[]): { node: Json; keys: string[] } {
  for (let hops = 0; hops < 10; hops++) {
    const node = at(document, keys) as Json | undefined
    if (node === undefined) throw new Error(`openapi.yaml: nothing at ${pointer(keys)}`)
    const ref = node.$ref
    if (typeof ref !== 'string') return { node, keys }
    if (!ref.startsWith('#/'))
      throw new Error(`openapi.yaml: only local $refs are supported (${ref})`)
    keys = ref
      .slice(2)
      .split('/')
      .map((k) => decodeURIComponent(k).replace(/~1/g, '/').replace(/~0/g, '~'))
  }
  throw new Error(`openapi.yaml: $ref loop at ${pointer(keys)}`)
}

const validators = new Map<string, ValidateFunction>()

/** A validator for the schema at `keys` of the document; its `$ref`s resolve in the document. */
export async function schemaValidator(keys: readonly string[]): Promise<ValidateFunction> {
  const { ajv } = await loadOpenApi()
  const ref = DOCUMENT_ID + pointer(keys)
  let validate = validators.get(ref)
  if (validate === undefined) {
    validate = ajv.compile({ $ref: ref })
    validators.set(ref, validate)
  }
  return validate
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`)
    .join('; ')
}

/** Every `METHOD path status` a test has checked, e.g. `POST /v1/user/auth/login 401`. */
export const openApiCoverage = new Set<string>()

/** Every documented `METHOD path` and its documented statuses. */
export async function documentedOperations(): Promise<
  Array<{ method: string; path: string; statuses: string[] }>
> {
  const { document } = await loadOpenApi()
  const operations = []
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method] as { responses?: Json } | undefined
      if (operation === undefined) continue
      operations.push({
        method: method.toUpperCase(),
        path,
        statuses: Object.keys(operation.responses ?? {}),
      })
    }
  }
  return operations
}

const mediaTypeOf = (contentType: string | null) =>
  (contentType ?? '').split(';')[0]!.trim().toLowerCase()
const isJson = (mediaType: string) => /^application\/([a-z0-9.+-]+\+)?json$/.test(mediaType)

export interface CheckedResponse {
  status: number
  /** The parsed JSON body, or the text of a non-JSON body, or undefined for an empty one. */
  body: unknown
}

/**
 * Checks a response against the operation `method pathTemplate` of openapi.yaml (the template as
 * in the document, e.g. `/v1/user/sessions/{id}`). Reads the body from a clone, so the caller may
 * still read it. Also checks the conventions every response follows: `X-Request-Id` and
 * `Cache-Control` always, `WWW-Authenticate` on 401, `Retry-After` on 429.
 */
export function checkAgainstOpenApi(
  method: string,
  pathTemplate: string,
  res: Response,
): Promise<CheckedResponse> {
  return checkAgainstOperation(
    ['paths', pathTemplate, method.toLowerCase()],
    `${method.toUpperCase()} ${pathTemplate}`,
    res,
  )
}

/**
 * checkAgainstOpenApi for the operation at `operationKeys` of the document, wherever it is (an
 * operation of `components.pathItems` describes a rule of every path); `name` labels messages
 * and the coverage entry.
 */
export async function checkAgainstOperation(
  operationKeys: string[],
  name: string,
  res: Response,
): Promise<CheckedResponse> {
  const { document } = await loadOpenApi()
  const where = `${name} → ${res.status}`
  const text = await res.clone().text()
  const operation = at(document, operationKeys) as Json | undefined
  expect(operation, `${where}: not an operation of openapi.yaml`).toBeDefined()
  const responses = operation!.responses as Json
  const status = String(res.status)
  expect(
    Object.keys(responses),
    `${where}: status not documented; body ${text.slice(0, 300)}`,
  ).toContain(status)
  const { node: response, keys: responseKeys } = deref(document, [
    ...operationKeys,
    'responses',
    status,
  ])

  // Conventions of the whole API.
  expect(res.headers.get('x-request-id'), `${where}: X-Request-Id`).toBeTruthy()
  expect(res.headers.get('cache-control'), `${where}: Cache-Control`).toBeTruthy()
  if (res.status === 401) {
    // Basic for service clients (README, "Service clients"), Bearer everywhere else.
    expect(res.headers.get('www-authenticate'), `${where}: WWW-Authenticate`).toMatch(
      /^(Bearer|Basic) realm="tessera"/,
    )
  }
  if (res.status === 429)
    expect(res.headers.get('retry-after'), `${where}: Retry-After`).toMatch(/^[1-9]\d*$/)

  // Documented headers: required ones present, present ones valid.
  for (const name of Object.keys((response.headers as Json | undefined) ?? {})) {
    const { node: header, keys: headerKeys } = deref(document, [...responseKeys, 'headers', name])
    const value = res.headers.get(name)
    if (value === null) {
      expect(header.required !== true, `${where}: required header ${name} is missing`).toBe(true)
      continue
    }
    const validate = await schemaValidator([...headerKeys, 'schema'])
    const ok = validate(value) || (/^-?\d+$/.test(value) && validate(Number(value)))
    expect(
      ok,
      `${where}: header ${name}: ${JSON.stringify(value)} ${describeErrors(validate.errors)}`,
    ).toBe(true)
  }

  // Body.
  const content = response.content as Json | undefined
  if (content === undefined) {
    expect(text, `${where}: documented without a body`).toBe('')
    openApiCoverage.add(`${name} ${status}`)
    return { status: res.status, body: undefined }
  }
  const mediaType = mediaTypeOf(res.headers.get('content-type'))
  expect(Object.keys(content), `${where}: content type ${mediaType}`).toContain(mediaType)
  let body: unknown = text
  if (isJson(mediaType)) {
    try {
      body = JSON.parse(text)
    } catch {
      throw new Error(`${where}: the body is not JSON: ${text.slice(0, 300)}`)
    }
  }
  if ((content[mediaType] as Json).schema !== undefined) {
    const validate = await schemaValidator([...responseKeys, 'content', mediaType, 'schema'])
    expect(
      validate(body),
      `${where}: ${describeErrors(validate.errors)}; body ${text.slice(0, 500)}`,
    ).toBe(true)
  }
  openApiCoverage.add(`${name} ${status}`)
  return { status: res.status, body }
}

/**
 * Checks that a request body the test is about to send is accepted by the documented request
 * schema (for requests the server is expected to accept): the document must not be stricter than
 * the server.
 */
export async function checkRequestBody(
  method: string,
  pathTemplate: string,
  mediaType: string,
  body: unknown,
) {
  const { document } = await loadOpenApi()
  const keys = ['paths', pathTemplate, method.toLowerCase(), 'requestBody']
  const { node: requestBody, keys: requestKeys } = deref(document, keys)
  const content = requestBody.content as Json
  expect(Object.keys(content), `${method} ${pathTemplate}: request content type`).toContain(
    mediaType,
  )
  const validate = await schemaValidator([...requestKeys, 'content', mediaType, 'schema'])
  expect(
    validate(body),
    `${method} ${pathTemplate} request: ${describeErrors(validate.errors)}`,
  ).toBe(true)
}

/** Hono's `/users/:id/promote` as the document writes it: `/users/{id}/promote`. */
export function toOpenApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, '{$1}')
}
