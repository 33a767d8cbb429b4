import { OAUTH_PROVIDERS } from '../federation/provider-table.js'
import { CliFailure } from './failure.js'

export type LoginMethod = 'password' | 'device' | 'browser'

export interface LoginOptions {
  email?: string | undefined
  password?: boolean | undefined
  device?: boolean | undefined
  browser?: boolean | undefined
  provider?: string | undefined
}

/**
 * Whether a browser can be shown here: always on macOS, on other systems when a display server
 * is named (X11's DISPLAY, Wayland's WAYLAND_DISPLAY). An HPC login node over SSH has neither.
 */
export function hasDisplay(env: NodeJS.ProcessEnv, platform = process.platform): boolean {
  if (platform === 'darwin') return true
  return Boolean(env.DISPLAY) || Boolean(env.WAYLAND_DISPLAY)
}

/**
 * How `tessera user login` proves the account (README, "Command line"): the flag given, else a
 * password when `--email` is given (the command as it always was), else the browser where there
 * is a display and a device login where there is none. `--provider` is a browser login.
 */
export function chooseLoginMethod(
  options: LoginOptions,
  env: NodeJS.ProcessEnv,
  platform = process.platform,
): LoginMethod {
  const flags = (['password', 'device', 'browser'] as const).filter((m) => options[m] === true)
  if (flags.length > 1) {
    throw new CliFailure(`choose one of --${flags.join(', --')}`, 2)
  }
  if (options.provider !== undefined) {
    if (!(OAUTH_PROVIDERS as readonly string[]).includes(options.provider)) {
      throw new CliFailure(`--provider must be one of ${OAUTH_PROVIDERS.join(', ')}`, 2)
    }
    if (flags[0] !== undefined && flags[0] !== 'browser') {
      throw new CliFailure('--provider signs in through the browser: use it with --browser', 2)
    }
    return 'browser'
  }
  const method = flags[0] ?? (options.email !== undefined ? 'password' : undefined)
  if (method === 'password' && options.email === undefined) {
    throw new CliFailure('--password needs --email', 2)
  }
  if (method !== undefined && method !== 'password' && options.email !== undefined) {
    throw new CliFailure('--email is only for --password: the other methods ask the server', 2)
  }
  return method ?? (hasDisplay(env, platform) ? 'browser' : 'device')
}
