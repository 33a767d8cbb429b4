import { Hono } from 'hono'
import * as v from 'valibot'
import type { Passkey } from '../../db/schema.js'
import { formatPasetoTime } from '../../paseto/time.js'
import { passkeySignInOptions } from '../../passkeys/authentication.js'
import { listPasskeys } from '../../passkeys/passkeys.js'
import { registerPasskey, registrationOptions } from '../../passkeys/registration.js'
import { removePasskey } from '../../passkeys/removal.js'
import { loginWithPasskey } from '../../passkeys/sign-in.js'
import { readJson, uuidParam } from '../body.js'
import { clientContext } from '../client.js'
import type { AppEnv } from '../env.js'
import { requireUser } from '../middleware/require-user.js'
import {
  authenticationResponseField,
  challengeField,
  passkeyNameField,
  registrationResponseField,
} from '../passkey-fields.js'

const RegisterBody = v.object({
  name: passkeyNameField,
  challenge: challengeField,
  response: registrationResponseField,
})
const SignInBody = v.object({ challenge: challengeField, response: authenticationResponseField })

/** A passkey as the API lists it: never its key, which is public anyway but of no use here. */
export function passkeyView(p: Passkey) {
  return {
    id: p.id,
    name: p.name,
    device_type: p.device_type,
    backed_up: p.backed_up === 1,
    created_at: formatPasetoTime(p.created_at),
    last_used_at: p.last_used_at === null ? null : formatPasetoTime(p.last_used_at),
  }
}

/** WebAuthn options with the handle of their challenge. */
export const optionsView = (o: { options: unknown; challenge: string; expiresAt: number }) => ({
  options: o.options,
  challenge: o.challenge,
  expires_at: formatPasetoTime(o.expiresAt),
})

/** `/v1/user/passkeys` and the passwordless login (openapi.yaml; README, "Passkeys"). */
export const passkeyRoutes = new Hono<AppEnv>()
  .post('/passkeys/registration-options', requireUser, async (c) => {
    return c.json(optionsView(await registrationOptions(c.get('tessera'), c.get('claims'))))
  })

  .post('/passkeys', requireUser, async (c) => {
    const body = await readJson(c, RegisterBody)
    const passkey = await registerPasskey(c.get('tessera'), c.get('claims'), body, clientContext(c))
    return c.json(passkeyView(passkey), 201)
  })

  .get('/passkeys', requireUser, async (c) => {
    const passkeys = await listPasskeys(c.get('tessera').db, c.get('claims').sub)
    return c.json({ passkeys: passkeys.map(passkeyView) })
  })

  .delete('/passkeys/:id', requireUser, async (c) => {
    const id = uuidParam(c.req.param('id'), 'passkey')
    await removePasskey(c.get('tessera'), c.get('claims'), id, clientContext(c))
    return c.body(null, 204)
  })

  .post('/auth/passkey/options', async (c) => {
    return c.json(optionsView(await passkeySignInOptions(c.get('tessera'), clientContext(c))))
  })

  .post('/auth/passkey', async (c) => {
    const body = await readJson(c, SignInBody)
    const login = await loginWithPasskey(c.get('tessera'), body, clientContext(c))
    return c.json(login.pair)
  })
