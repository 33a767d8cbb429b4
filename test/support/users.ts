import { expect } from 'vitest'
import type { TestApp } from './app.js'

export interface TokenPairBody {
  access_token: string
  refresh_token: string
  token_type: string
  expires_in: number
  refresh_expires_in: number
}

let counter = 0

/** A number no other call in this test process answers (ids of upstream accounts and such). */
export function uniqueNumber(): number {
  counter += 1
  return counter
}

/** A unique address per call, so tests in one database never collide. */
export function uniqueEmail(prefix = 'user'): string {
  return `${prefix}.${process.pid}.${uniqueNumber()}@example.org`
}

/** A unique upstream account (`sub` at a provider stand-in) per call. */
export function uniqueSubject(prefix = 'sub'): string {
  return `${prefix}-${process.pid}-${uniqueNumber()}`
}

export const PASSWORD = 'plausible-lantern-orbit-42'

export async function register(app: TestApp, email = uniqueEmail(), password = PASSWORD) {
  const res = await app.request('/v1/user/auth/register', { json: { email, password } })
  expect(res.status, await res.clone().text()).toBe(201)
  return { email, password, user: (await res.json()) as { id: string; email: string } }
}

export async function login(
  app: TestApp,
  email: string,
  password = PASSWORD,
): Promise<TokenPairBody> {
  return tokenPairOf(await app.request('/v1/user/auth/login', { json: { email, password } }))
}

export async function registerAndLogin(app: TestApp, email = uniqueEmail()) {
  const registered = await register(app, email)
  return { ...registered, tokens: await login(app, email) }
}

export function refresh(app: TestApp, refreshToken: string): Promise<Response> {
  return app.request('/v1/user/auth/refresh', { json: { refresh_token: refreshToken } })
}

/** The token pair of a 200 answer (login, refresh, exchange); any other answer fails the test. */
export async function tokenPairOf(res: Response): Promise<TokenPairBody> {
  expect(res.status, await res.clone().text()).toBe(200)
  return (await res.json()) as TokenPairBody
}

/** A refresh that must succeed: the new pair. */
export async function refreshPair(app: TestApp, refreshToken: string): Promise<TokenPairBody> {
  return tokenPairOf(await refresh(app, refreshToken))
}

export async function expectProblem(res: Response, status: number, code: string) {
  const text = await res.text()
  expect(res.status, text).toBe(status)
  expect(res.headers.get('content-type')).toBe('application/problem+json')
  const body = JSON.parse(text) as {
    code: string
    status: number
    title: string
    detail: string
    type: string
  }
  expect(body.code).toBe(code)
  expect(body.status).toBe(status)
  expect(typeof body.title).toBe('string')
  expect(typeof body.detail).toBe('string')
  return body
}
