import { parse } from 'bowser'

const MAX_SHOWN = 80

/**
 * A session's device as the account page names it, from the User-Agent it signed in with:
 * "Chrome 131 on Linux". A client no browser table knows (a CLI, curl) is shown by its own
 * User-Agent, shortened.
 */
export function describeDevice(userAgent: string | null): string {
  if (userAgent === null || userAgent.trim() === '') return 'Unknown device'
  const { browser, os } = parse(userAgent)
  if (browser.name === undefined || browser.name === '') {
    return userAgent.length > MAX_SHOWN ? `${userAgent.slice(0, MAX_SHOWN)}…` : userAgent
  }
  const major = browser.version?.split('.')[0]
  const name = major === undefined || major === '' ? browser.name : `${browser.name} ${major}`
  const system = os.name === undefined || os.name === '' ? undefined : (os.versionName ?? os.name)
  const shownSystem =
    system !== undefined && os.name !== undefined && !system.startsWith(os.name)
      ? `${os.name} ${system}`
      : system
  return shownSystem === undefined ? name : `${name} on ${shownSystem}`
}

/** Times on the account page: minutes, UTC, unambiguous in every locale. */
export function formatWhen(epochMs: number): string {
  return `${new Date(epochMs).toISOString().slice(0, 16).replace('T', ' ')} UTC`
}
