import { type Answer, type AuthorizedRequest, expectOk } from './answer.js'
import { CliFailure } from './failure.js'
import { type CliIo, printError, printLine } from './io.js'
import { readSecret } from './prompt.js'

/**
 * `tessera token create|list|revoke|mint` (README, "Scripts, pipelines and services"): personal
 * access tokens and job tokens of the logged-in user, through `/v1/user/tokens`. A new PAT's
 * secret and a minted job token are the only things printed to standard output, once, so
 * `tessera token mint ... > file` or `export TOKEN=$(tessera token mint ...)` keeps them out of
 * the terminal; everything else goes to standard error.
 */

export type TokenCommand = 'token create' | 'token list' | 'token revoke' | 'token mint'

export interface TokenValues {
  name?: string | undefined
  audience?: string | undefined
  scope?: string | undefined
  'expires-in'?: string | undefined
  ttl?: string | undefined
  all?: boolean | undefined
  args: string[]
}

const UNITS: Record<string, number> = {
  s: 1,
  m: 60,
  h: 3_600,
  d: 86_400,
  w: 604_800,
  y: 31_536_000,
}

/** `90d`, `12h`, `30m`, `3600s` or a bare number of seconds. */
export function parseDuration(text: string, option: string): number {
  const match = /^(\d{1,9})([smhdwy]?)$/.exec(text.trim())
  if (match === null) {
    throw new CliFailure(`${option} must be a duration such as 30m, 12h, 90d or 3600`, 2)
  }
  return Number(match[1]) * UNITS[match[2] || 's']!
}

function scopesOf(values: TokenValues): string[] | undefined {
  if (values.scope === undefined) return undefined
  const scopes = values.scope.split(/[\s,]+/).filter((s) => s.length > 0)
  if (scopes.length === 0) throw new CliFailure('--scope must name at least one scope', 2)
  return scopes
}

interface TokenView {
  id: string
  kind: string
  name: string
  prefix: string | null
  audience: string
  scopes: string[]
  created_at: string
  last_used_at: string | null
  expires_at: string
}

export async function runTokenCommand(
  command: TokenCommand,
  values: TokenValues,
  io: CliIo,
  call: AuthorizedRequest,
): Promise<void> {
  switch (command) {
    case 'token create': {
      if (values.name === undefined || values.name.trim() === '') {
        throw new CliFailure('--name is required', 2)
      }
      const created = (await withRecentLogin(io, call, () =>
        call('POST', '/v1/user/tokens', {
          kind: 'pat',
          name: values.name,
          ...(values.audience === undefined ? {} : { audience: values.audience }),
          ...optionalScopes(values),
          ...(values['expires-in'] === undefined
            ? {}
            : { expires_in: parseDuration(values['expires-in'], '--expires-in') }),
        }),
      )) as TokenView & { token: string }
      printError(io, `Personal access token "${created.name}" (${created.id})`)
      printError(
        io,
        `audience ${created.audience}, scopes ${created.scopes.join(' ')}, ` +
          `expires ${created.expires_at}. This is the only time the secret is shown:`,
      )
      printLine(io, created.token)
      return
    }
    case 'token mint': {
      if (values.audience === undefined) throw new CliFailure('--audience is required', 2)
      const minted = (await withRecentLogin(io, call, () =>
        call('POST', '/v1/user/tokens', {
          kind: 'job',
          name: values.name ?? 'tessera token mint',
          audience: values.audience,
          ...optionalScopes(values),
          ...(values.ttl === undefined ? {} : { expires_in: parseDuration(values.ttl, '--ttl') }),
        }),
      )) as TokenView & { access_token: string }
      printError(
        io,
        `Job token ${minted.id} for ${minted.audience} (${minted.scopes.join(' ')}), ` +
          `expires ${minted.expires_at}; revoke it with tessera token revoke ${minted.id}`,
      )
      printLine(io, minted.access_token)
      return
    }
    case 'token list': {
      const { tokens } = expectOk(await call('GET', '/v1/user/tokens')) as { tokens: TokenView[] }
      if (tokens.length === 0) {
        printError(io, 'No live tokens')
        return
      }
      for (const t of tokens) {
        printLine(
          io,
          [
            t.id,
            t.kind,
            JSON.stringify(t.name),
            t.prefix ?? '-',
            t.audience,
            t.scopes.join(','),
            `created ${t.created_at}`,
            `used ${t.last_used_at ?? 'never'}`,
            `expires ${t.expires_at}`,
          ].join('  '),
        )
      }
      return
    }
    case 'token revoke': {
      if (values.all === true) {
        const { revoked } = expectOk(await call('DELETE', '/v1/user/tokens')) as {
          revoked: number
        }
        printLine(io, `Revoked ${revoked} token${revoked === 1 ? '' : 's'}`)
        return
      }
      const id = values.args[0]
      if (id === undefined || values.args.length > 1) {
        throw new CliFailure('name one token id (tessera token list shows them), or --all', 2)
      }
      expectOk(await call('DELETE', `/v1/user/tokens/${encodeURIComponent(id)}`))
      printLine(io, `Revoked ${id}`)
      return
    }
  }
}

function optionalScopes(values: TokenValues): { scopes?: string[] } {
  const scopes = scopesOf(values)
  return scopes === undefined ? {} : { scopes }
}

/**
 * A new token is a new credential: the server wants a recent authentication (README, "Recent
 * authentication"). The password is asked for then, and the request sent again.
 */
async function withRecentLogin(
  io: CliIo,
  call: AuthorizedRequest,
  send: () => Promise<Answer>,
): Promise<unknown> {
  let answer = await send()
  if (!answer.ok && answer.problem.code === 'reauthentication_required') {
    printError(io, 'A new token is a new way into your account: confirm it is you.')
    const password = await readSecret(io, 'Password (Enter if your account has none): ').catch(
      () => '',
    )
    if (password === '') {
      throw new CliFailure(
        'your login is not recent enough to make a token: log in again (tessera user login), ' +
          'then run the command right away',
      )
    }
    const proved = await call('POST', '/v1/user/auth/reauthenticate', { password })
    if (!proved.ok && proved.problem.code === 'invalid_credentials') {
      throw new CliFailure('the password is wrong')
    }
    expectOk(proved)
    answer = await send()
  }
  return expectOk(answer)
}
