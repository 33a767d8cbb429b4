import { Hono } from 'hono'
import * as v from 'valibot'
import { CLIENT_CREDENTIALS_GRANT_TYPE } from '../../clients/client-credentials.js'
import { startDeviceAuthorization } from '../../device/authorization.js'
import { DEVICE_CODE_GRANT_TYPE, redeemDeviceCode } from '../../device/redeem.js'
import { TesseraError } from '../../errors.js'
import {
  ACCESS_TOKEN_TYPE,
  exchangePersonalToken,
  PAT_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT_TYPE,
} from '../../personal-tokens/exchange.js'
import { requestedGrant } from '../../tokens/grant.js'
import { grantFields, noControlCharacters, readFormOrJson } from '../body.js'
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
  // The scope of a device login is asked for at the token request, with the audience
  // (README, "Scripts, pipelines and services"); here it is accepted and ignored.
  scope: v.exactOptional(text(1000)),
})

const TokenBody = v.object({
  grant_type: text(200),
  // Optional here so that another grant type answers unsupported_grant_type, not a field error.
  device_code: v.exactOptional(text(200)),
  client_id: v.exactOptional(text(64)),
  // client_credentials (README, "Service clients").
  client_secret: v.exactOptional(text(200)),
  // RFC 8693 token exchange (README, "Scripts, pipelines and services").
  subject_token: v.exactOptional(text(200)),
  subject_token_type: v.exactOptional(text(200)),
  requested_token_type: v.exactOptional(text(200)),
  ...grantFields,
})

const required = (field: string) =>
  new TesseraError('validation_failed', `${field}: is required`, {
    errors: [{ field, message: 'is required' }],
  })

/**
 * `/v1/oauth/...`: the device authorization grant (RFC 8628; README, "Device login") and the
 * exchange of a personal access token (RFC 8693; README, "Scripts, pipelines and services"). Errors
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
    const t = c.get('tessera')
    const body = await readFormOrJson(c, TokenBody)
    if (body.grant_type === CLIENT_CREDENTIALS_GRANT_TYPE) {
      return c.json(await clientCredentialsGrant(c, body))
    }
    if (body.grant_type === TOKEN_EXCHANGE_GRANT_TYPE) {
      if (body.subject_token === undefined) throw required('subject_token')
      if (body.subject_token_type === undefined) throw required('subject_token_type')
      if (body.subject_token_type !== PAT_TOKEN_TYPE) {
        throw new TesseraError(
          'validation_failed',
          `subject_token_type: must be ${PAT_TOKEN_TYPE}`,
          { errors: [{ field: 'subject_token_type', message: `must be ${PAT_TOKEN_TYPE}` }] },
        )
      }
      if (
        body.requested_token_type !== undefined &&
        body.requested_token_type !== ACCESS_TOKEN_TYPE
      ) {
        throw new TesseraError(
          'validation_failed',
          `requested_token_type: must be ${ACCESS_TOKEN_TYPE}`,
          {
            errors: [{ field: 'requested_token_type', message: `must be ${ACCESS_TOKEN_TYPE}` }],
          },
        )
      }
      return c.json(await exchangePersonalToken(t, body.subject_token, body, clientContext(c)))
    }
    if (body.grant_type !== DEVICE_CODE_GRANT_TYPE) {
      throw new TesseraError(
        'unsupported_grant_type',
        `This endpoint serves the grant types ${DEVICE_CODE_GRANT_TYPE}, ` +
          `${CLIENT_CREDENTIALS_GRANT_TYPE} and ${TOKEN_EXCHANGE_GRANT_TYPE}`,
      )
    }
    if (body.client_id === undefined) throw required('client_id')
    if (body.device_code === undefined) throw required('device_code')
    const grant = requestedGrant(t.config, body)
    const pair = await redeemDeviceCode(
      t,
      { clientId: body.client_id, deviceCode: body.device_code },
      clientContext(c),
      grant,
    )
    return c.json(pair)
  })
