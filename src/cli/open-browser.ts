import { spawn } from 'node:child_process'

/** A launcher still running after this long is taken to be the browser itself: it opened. */
const LAUNCH_SETTLE_MS = 2_000

/**
 * The commands that may open a URL, in order: `$BROWSER` (a `:`-separated list of commands, each
 * split on spaces, `%s` standing for the URL or the URL appended, as Python's `webbrowser` and
 * most tools read it), else the desktop's opener (`open` on macOS, `xdg-open` elsewhere).
 */
export function browserCommands(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): string[][] {
  const configured = env.BROWSER?.trim()
  if (configured !== undefined && configured !== '') {
    return configured
      .split(':')
      .map((command) => command.trim().split(/\s+/))
      .filter((argv) => argv[0] !== undefined && argv[0] !== '')
  }
  return [[platform === 'darwin' ? 'open' : 'xdg-open']]
}

/**
 * Opens `url` in the user's browser, trying each command in turn; false when none could (no
 * such program, or it exited with an error). Spawned without a shell, so nothing in the URL is
 * ever interpreted, and detached, so the browser outlives this command.
 */
export async function openBrowser(url: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  for (const argv of browserCommands(env)) {
    const [program, ...args] = argv as [string, ...string[]]
    const withUrl = args.includes('%s') ? args.map((a) => (a === '%s' ? url : a)) : [...args, url]
    if (await launched(program, withUrl)) return true
  }
  return false
}

function launched(program: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false
    const settle = (opened: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.unref()
      resolve(opened)
    }
    const child = spawn(program, args, { stdio: 'ignore', detached: true })
    const timer = setTimeout(() => settle(true), LAUNCH_SETTLE_MS)
    child.once('error', () => settle(false))
    child.once('exit', (code) => settle(code === 0))
  })
}
