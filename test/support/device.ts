import { expect } from 'vitest'
import { approveUserCode, denyUserCode } from '../../src/device/verification.js'
import type { Tessera } from '../../src/tessera.js'
import type { RequestInitWithJson } from './http.js'

/** Something with a `request` like TestApp's (a test app, a second server on its database). */
export interface Requester {
  request(path: string, init?: RequestInitWithJson): Promise<Response>
}

export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
export const CLI_CLIENT = 'tessera-cli'

/** RFC 8628 §3.2. */
export interface DeviceAuthorizationBody {
  device_code: string
  user_code: string
  verification_uri: string
  verification_uri_complete: string
  expires_in: number
  interval: number
}

/** A form-encoded POST, as OAuth clients send. */
export function postForm(
  app: Requester,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<Response> {
  return app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  })
}

/** Starts a device login that must succeed. */
export async function startDevice(
  app: Requester,
  clientId = CLI_CLIENT,
  headers: Record<string, string> = {},
): Promise<DeviceAuthorizationBody> {
  const res = await postForm(
    app,
    '/v1/oauth/device_authorization',
    { client_id: clientId },
    headers,
  )
  expect(res.status, await res.clone().text()).toBe(200)
  return (await res.json()) as DeviceAuthorizationBody
}

/** One poll of the token endpoint. */
export function poll(app: Requester, deviceCode: string, clientId = CLI_CLIENT): Promise<Response> {
  return postForm(app, '/v1/oauth/token', {
    grant_type: DEVICE_GRANT,
    device_code: deviceCode,
    client_id: clientId,
  })
}

/** An OAuth error answer (RFC 6749 §5.2) that is also a Tessera problem with the same code. */
export async function expectOAuthError(res: Response, error: string, status = 400) {
  const text = await res.text()
  expect(res.status, text).toBe(status)
  expect(res.headers.get('content-type')).toBe('application/json')
  expect(res.headers.get('cache-control')).toBe('no-store')
  const body = JSON.parse(text) as Record<string, unknown>
  expect(body.error).toBe(error)
  expect(typeof body.error_description).toBe('string')
  expect(body.type).toBe(`urn:tessera:problem:${String(body.code)}`)
  expect(body.status).toBe(status)
  return body
}

/** The session id (`sid` claim) of an access token; the payload is the JSON before 64 bytes. */
export function sessionOf(accessToken: string): { sub: string; sid: string } {
  const bytes = Buffer.from(accessToken.split('.')[2]!, 'base64url')
  return JSON.parse(bytes.subarray(0, bytes.length - 64).toString('utf8')) as {
    sub: string
    sid: string
  }
}

/**
 * Approves a user code as the holder of `accessToken` would at the verification page: the
 * domain function the page calls, with that login's real session.
 */
export function approveAs(
  tessera: Tessera,
  accessToken: string,
  userCode: string,
  ip = '198.51.100.7',
): Promise<void> {
  const { sub, sid } = sessionOf(accessToken)
  return approveUserCode(tessera, { userId: sub, sessionId: sid, ip }, userCode)
}

export function denyAs(
  tessera: Tessera,
  accessToken: string,
  userCode: string,
  ip = '198.51.100.7',
): Promise<void> {
  const { sub, sid } = sessionOf(accessToken)
  return denyUserCode(tessera, { userId: sub, sessionId: sid, ip }, userCode)
}
