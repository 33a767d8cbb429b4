import { Secret, TOTP } from 'otpauth'
import { expect } from 'vitest'
import type { TestApp } from './app.js'
import { PASSWORD, type TokenPairBody, tokenPairOf } from './users.js'

/** The code an authenticator app shows for `secret` at the app's clock plus `steps` steps. */
export function totpCode(app: TestApp, secret: string, steps = 0): string {
  const totp = new TOTP({ secret: Secret.fromBase32(secret), digits: 6, period: 30 })
  return totp.generate({ timestamp: app.clock() + steps * 30_000 })
}

export interface EnrolledTotp {
  secret: string
  otpauthUri: string
  recoveryCodes: string[]
}

/** Enrols TOTP for the holder of `accessToken` (a fresh login) through the API. */
export async function enrolTotp(app: TestApp, accessToken: string): Promise<EnrolledTotp> {
  const started = await app.request('/v1/user/mfa/totp', { method: 'POST', token: accessToken })
  expect(started.status, await started.clone().text()).toBe(201)
  const { secret, otpauth_uri } = (await started.json()) as { secret: string; otpauth_uri: string }
  const confirmed = await app.request('/v1/user/mfa/totp/confirm', {
    token: accessToken,
    json: { code: totpCode(app, secret) },
  })
  expect(confirmed.status, await confirmed.clone().text()).toBe(200)
  const { recovery_codes } = (await confirmed.json()) as { recovery_codes: string[] }
  return { secret, otpauthUri: otpauth_uri, recoveryCodes: recovery_codes }
}

/** The body of a `mfa_required` answer; anything else fails the test. */
export async function mfaTicketOf(
  res: Response,
): Promise<{ mfa_ticket: string; factors: string[] }> {
  const text = await res.text()
  expect(res.status, text).toBe(401)
  const body = JSON.parse(text) as { code: string; mfa_ticket: string; factors: string[] }
  expect(body.code).toBe('mfa_required')
  return body
}

/**
 * A password login of an account with TOTP, through both steps. The code is the next step's (the
 * window allows it), since the current step may have been spent by the enrolment.
 */
export async function loginWithTotp(
  app: TestApp,
  email: string,
  secret: string,
  steps = 1,
): Promise<TokenPairBody> {
  const first = await app.request('/v1/user/auth/login', { json: { email, password: PASSWORD } })
  const { mfa_ticket } = await mfaTicketOf(first)
  return tokenPairOf(
    await app.request('/v1/user/auth/mfa', {
      json: { mfa_ticket, totp_code: totpCode(app, secret, steps) },
    }),
  )
}
