/** The revocation variables of the configuration (README, "Configuration"). */
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config/index.js'

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as ConfigError).problems
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`)
}

describe('REVOCATION_* variables', () => {
  it('default to notifications, a 250 ms poll and 500 stream clients', () => {
    expect(loadConfig({}).revocations).toEqual({ notify: true, pollMs: 250, streamMaxClients: 500 })
    expect(
      loadConfig({
        REVOCATION_NOTIFY: 'false',
        REVOCATION_POLL_MS: '1000',
        REVOCATION_STREAM_MAX_CLIENTS: '0',
      }).revocations,
    ).toEqual({ notify: false, pollMs: 1000, streamMaxClients: 0 })
  })

  it('refuses what is out of bounds, naming the variable', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ REVOCATION_NOTIFY: 'maybe' }, 'REVOCATION_NOTIFY must be true or false'],
      [{ REVOCATION_POLL_MS: '10' }, 'REVOCATION_POLL_MS must be at least 50'],
      [{ REVOCATION_POLL_MS: '60001' }, 'REVOCATION_POLL_MS must be at most 60000'],
      [
        { REVOCATION_STREAM_MAX_CLIENTS: '-1' },
        'REVOCATION_STREAM_MAX_CLIENTS must be a whole number',
      ],
      [
        { REVOCATION_STREAM_MAX_CLIENTS: '100001' },
        'REVOCATION_STREAM_MAX_CLIENTS must be at most 100000',
      ],
    ]
    for (const [env, message] of cases) expect(problems(env)).toEqual([message])
  })
})
