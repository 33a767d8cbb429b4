import { isIP } from 'node:net'

/**
 * The rate-limit key of a client address: an IPv4 address as it is, an IPv6 address by its /64
 * prefix. One IPv6 subscriber (a home, a phone, a cloud machine) is routinely handed a whole /64,
 * so keying by the full address would give one attacker 2^64 budgets (README, "Device login").
 */
export function addressBucket(ip: string | null): string {
  if (ip === null) return 'unknown'
  if (isIP(ip) !== 6) return ip
  const groups = expandIpv6(ip)
  return groups === undefined ? ip : `${groups.slice(0, 4).join(':')}::/64`
}

/** The eight 16-bit groups of an IPv6 address, in lower-case hex without leading zeros. */
function expandIpv6(ip: string): string[] | undefined {
  let text = ip.toLowerCase().split('%')[0]!
  // A dotted IPv4 tail (64:ff9b::192.0.2.1) is two groups.
  const tail = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (tail !== null) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number]
    const high = ((a << 8) | b).toString(16)
    const low = ((c << 8) | d).toString(16)
    text = `${text.slice(0, tail.index)}${high}:${low}`
  }
  const [head = '', rest] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = rest === undefined || rest === '' ? [] : rest.split(':')
  const missing = 8 - left.length - right.length
  if (rest === undefined ? missing !== 0 : missing < 1) return undefined
  const groups = [...left, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...right]
  return groups.map((g) => Number.parseInt(g, 16).toString(16))
}
