import { Hono } from 'hono'
import * as v from 'valibot'
import { factorProof, mfaPasskeyOptions } from '../../mfa/factors.js'
import { completeMfaLogin } from '../../mfa/login-step.js'
import {
  beginTotpEnrolment,
  finishTotpEnrolment,
  mfaStatus,
  newRecoveryCodes,
  removeTotp,
} from '../../mfa/manage.js'
import { stepUpSession } from '../../mfa/step-up.js'
import { readMfaTicket } from '../../mfa/tickets.js'
import { readJson, readOptionalJson } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'
import { authenticationResponseField, challengeField } from '../passkey-fields.js'
import { optionsView } from './passkeys.js'

/** A TOTP code as people type it: six digits, perhaps with a space in the middle. */
const totpCodeField = v.pipe(v.string(), v.maxLength(16, 'is too long'))
/** A recovery code: sixteen characters, perhaps with a dash or spaces. */
const recoveryCodeField = v.pipe(v.string(), v.maxLength(32, 'is too long'))
/** A passkey's assertion: the challenge handle its options named and the authenticator's answer. */
export const webauthnProofField = v.object({
  challenge: challengeField,
  response: authenticationResponseField,
})
const mfaTicketField = v.pipe(v.string(), v.maxLength(128, 'is too long'))

const proofFields = {
  totp_code: v.exactOptional(totpCodeField),
  recovery_code: v.exactOptional(recoveryCodeField),
  webauthn: v.exactOptional(webauthnProofField),
}
const MfaLoginBody = v.object({ mfa_ticket: mfaTicketField, ...proofFields })
const TicketBody = v.object({ mfa_ticket: mfaTicketField })
const StepUpBody = v.object(proofFields)
const ConfirmBody = v.object({ code: totpCodeField })
const RemoveBody = v.object({ code: v.exactOptional(totpCodeField) })

/**
 * `/v1/user/auth/mfa` and `/v1/user/mfa/...`: the second step of a login, and the user's second
 * factors (README, "Second factors"; openapi.yaml).
 */
export const mfaRoutes = new Hono<AppEnv>()
  .post('/auth/mfa', async (c) => {
    const body = await readJson(c, MfaLoginBody)
    const { pair } = await completeMfaLogin(
      c.get('tessera'),
      body.mfa_ticket,
      factorProof(body),
      clientContext(c),
    )
    return c.json(pair)
  })

  // Options for a passkey as the login's second factor: the ticket is read, not spent.
  .post('/auth/mfa/webauthn-options', async (c) => {
    const body = await readJson(c, TicketBody)
    const t = c.get('tessera')
    const open = await readMfaTicket(t, body.mfa_ticket)
    return c.json(optionsView(await mfaPasskeyOptions(t, open.userId)))
  })

  .get('/mfa', requireUser, async (c) => {
    return c.json(await mfaStatus(c.get('tessera'), c.get('claims').sub))
  })

  .post('/mfa/totp', requireUser, async (c) => {
    return c.json(await beginTotpEnrolment(c.get('tessera'), c.get('claims')), 201)
  })

  .post('/mfa/totp/confirm', requireUser, async (c) => {
    const body = await readJson(c, ConfirmBody)
    const codes = await finishTotpEnrolment(
      c.get('tessera'),
      c.get('claims'),
      body.code,
      clientContext(c),
    )
    return c.json({ recovery_codes: codes })
  })

  .delete('/mfa/totp', requireUser, async (c) => {
    const body = await readOptionalJson(c, RemoveBody)
    await removeTotp(c.get('tessera'), c.get('claims'), body.code, clientContext(c))
    return c.body(null, 204)
  })

  .post('/mfa/recovery-codes', requireUser, async (c) => {
    const codes = await newRecoveryCodes(c.get('tessera'), c.get('claims'), clientContext(c))
    return c.json({ recovery_codes: codes })
  })

  .post('/mfa/step-up', requireUser, async (c) => {
    const body = await readJson(c, StepUpBody)
    const raised = await stepUpSession(
      c.get('tessera'),
      c.get('claims'),
      factorProof(body),
      clientContext(c),
    )
    return c.json(raised)
  })

  .post('/mfa/step-up/webauthn-options', requireUser, async (c) => {
    const t = c.get('tessera')
    return c.json(optionsView(await mfaPasskeyOptions(t, c.get('claims').sub)))
  })
