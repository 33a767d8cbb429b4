import { Hono } from 'hono'
import * as v from 'valibot'
import { registerAccount } from '../../accounts/accounts.js'
import { loginWithPassword } from '../../accounts/login.js'
import {
  displayNameField,
  emailField,
  loginEmailField,
  noControlCharacters,
  passwordField,
  readJson,
} from '../body.js'
import { clientContext, deviceToken, setDeviceCookie } from '../client.js'
import type { AppEnv } from '../env.js'
import { problemWithCookies } from '../problem.js'

const ArchiveRegisterBody = v.object({
  email: emailField,
  password: passwordField,
  full_name: displayNameField,
  role: v.optional(
    v.pipe(
      v.string('must be a string'),
      noControlCharacters,
      v.trim(),
      v.maxLength(64, 'is too long'),
    ),
  ),
})
const ArchiveLoginBody = v.object({ email: loginEmailField, password: passwordField })

/**
 * The sequence archive's paths (README, "Sequence-archive compatibility"), on the same
 * accounts. Unlike the archive, a role is accepted only from SELF_ASSIGNABLE_ROLES (never an
 * administrative one), and login hands out the same rotating pair as `/v1/user/auth/login`.
 */
export const archiveRoutes = new Hono<AppEnv>()
  .post('/register', async (c) => {
    const t = c.get('tessera')
    const client = clientContext(c)
    await t.limits.registerPerIp.consume(client.ip ?? 'unknown')
    const body = await readJson(c, ArchiveRegisterBody)
    const user = await registerAccount(
      t,
      {
        email: body.email,
        password: body.password,
        displayName: body.full_name,
        selfAssignedRole: body.role ?? null,
      },
      client,
    )
    return c.json(
      { id: user.id, email: user.email, full_name: user.display_name, role: user.role },
      201,
    )
  })
  .post('/login', async (c) => {
    const body = await readJson(c, ArchiveLoginBody)
    const login = await loginWithPassword(c.get('tessera'), body, clientContext(c), deviceToken(c))
    setDeviceCookie(c, login.deviceCookie)
    if ('mfaRequired' in login.outcome) return problemWithCookies(c, login.outcome.mfaRequired)
    return c.json(login.outcome.pair)
  })
