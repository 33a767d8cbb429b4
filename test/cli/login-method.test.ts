/**
 * How `tessera user login` picks its method (README, "Logging in from a terminal"): the flag,
 * else a password with --email, else the browser where there is a display, else a device login.
 */
import { describe, expect, it } from 'vitest'
import { chooseLoginMethod, type LoginOptions } from '../../src/cli/login-method.js'

const cases: Array<[string, LoginOptions, NodeJS.ProcessEnv, NodeJS.Platform, string]> = [
  ['an SSH session without a display', {}, {}, 'linux', 'device'],
  ['an X11 desktop', {}, { DISPLAY: ':0' }, 'linux', 'browser'],
  ['a Wayland desktop', {}, { WAYLAND_DISPLAY: 'wayland-0' }, 'linux', 'browser'],
  ['an empty DISPLAY', {}, { DISPLAY: '' }, 'linux', 'device'],
  ['macOS, always', {}, {}, 'darwin', 'browser'],
  ['--email alone, as before', { email: 'a@example.org' }, { DISPLAY: ':0' }, 'linux', 'password'],
  ['--device on a desktop', { device: true }, { DISPLAY: ':0' }, 'linux', 'device'],
  ['--browser without a display', { browser: true }, {}, 'linux', 'browser'],
  ['--provider without a display', { provider: 'cilogon' }, {}, 'linux', 'browser'],
]

describe('chooseLoginMethod', () => {
  for (const [what, options, env, platform, method] of cases) {
    it(`${what}: ${method}`, () => {
      expect(chooseLoginMethod(options, env, platform)).toBe(method)
    })
  }
})
