import { Hono } from 'hono'
import * as v from 'valibot'
import { CLIENT_CREDENTIALS_GRANT_TYPE } from '../../clients/client-credentials.js'
import { startDeviceAuthorization } from '../../device/authorization.js'
import { DEVICE_CODE_GRANT_TYPE, redeemDeviceCode } from '../../device/redeem.js'
import { TesseraError } from '../../errors.js'
import { noControlCharacters, readFormOrJson } from '../body.js'
import { clientContext } from '../client.js'
import { clientCredentialsGrant } from '../client-auth.js'
import type { AppEnv } from '../env.js'

const text = (max: number) =>
  v.pipe(
    v.string('must be a string'),
    noControlCharacters,
    v.nonEmpty('is required'),
    v.maxLength(max, `must be at most ${max} characters`),
  )

const DeviceAuthorizationBody = v.object({
  client_id: text(64),
  // Tessera has no scopes: a requested scope is accepted and ignored (RFC 8628 §3.1 OPTIONAL).
  scope: v.exactOptional(text(1000)),
})

const TokenBody = v.object({
  grant_type: text(200),
  // Optional here so that another grant type answers unsupported_grant_type, not a field error.
  device_code: v.exactOptional(text(200)),
  client_id: v.exactOptional(text(64)),
  // client_credentials (README, "Service clients").
  client_secret: v.exactOptional(text(200)),
  resource: v.exactOptional(text(200)),
  audience: v.exactOptional(text(200)),
})

const required = (field: string) =>
  new TesseraError('validation_failed', `${field}: is required`, {
    errors: [{ field, message: 'is required' }],
  })

/**
 * `/v1/oauth/...`: the device authorization grant (RFC 8628; README, "Device login"). Errors
 * carry RFC 6749's `error` as well (middleware/oauth-errors.ts).
 */
export const oauthRoutes = new Hono<AppEnv>()
  .post('/device_authorization', async (c) => {
    const t = c.get('tessera')
    const client = clientContext(c)
    // Each request stores a row: limited per address before anything else.
    await t.limits.deviceAuthorizationPerIp.consume(client.ip ?? 'unknown')
    const body = await readFormOrJson(c, DeviceAuthorizationBody)
    return c.json(await startDeviceAuthorization(t, body.client_id, client))
  })

  .post('/token', async (c) => {
    const body = await readFormOrJson(c, TokenBody)
    if (body.grant_type === CLIENT_CREDENTIALS_GRANT_TYPE) {
      return c.json(await clientCredentialsGrant(c, body))
    }
    if (body.grant_type !== DEVICE_CODE_GRANT_TYPE) {
      throw new TesseraError(
        'unsupported_grant_type',
        `This endpoint serves the grant types ${DEVICE_CODE_GRANT_TYPE} and ` +
          CLIENT_CREDENTIALS_GRANT_TYPE,
      )
    }
    if (body.client_id === undefined) throw required('client_id')
    if (body.device_code === undefined) throw required('device_code')
    const pair = await redeemDeviceCode(
      c.get('tessera'),
      { clientId: body.client_id, deviceCode: body.device_code },
      clientContext(c),
    )
    return c.json(pair)
  })
