/**
 * The variables of audiences, scopes, personal access tokens and job tokens (README,
 * "Configuration" and "Scripts, pipelines and services"): their defaults change nothing for a
 * deployment that sets none, and bad values stop the start with the variable's name.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, type Env, loadConfig } from '../../src/config/index.js'

function problems(env: Env): string[] {
  try {
    loadConfig(env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as ConfigError).problems
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`)
}

describe('audience, scope and token variables', () => {
  it('default to the one TESSERA_AUDIENCE, read and write, a year and a day', () => {
    const config = loadConfig({})
    expect(config.audiences).toEqual(['tessera'])
    expect(config.scopes).toEqual(['read', 'write'])
    expect(config.patMaxLifetime).toBe(31_536_000)
    expect(config.jobTokenMaxTtl).toBe(86_400)
  })

  it('AUDIENCES adds to TESSERA_AUDIENCE, which stays first and the default', () => {
    const config = loadConfig({ TESSERA_AUDIENCE: 'portal', AUDIENCES: 'syndb, seqdb,portal' })
    expect(config.audience).toBe('portal')
    expect(config.audiences).toEqual(['portal', 'syndb', 'seqdb'])
    expect(loadConfig({ AUDIENCES: 'https://seqdb.example.org' }).audiences).toEqual([
      'tessera',
      'https://seqdb.example.org',
    ])
  })

  it('SCOPES takes spaces or commas', () => {
    expect(loadConfig({ SCOPES: 'read,write  admin' }).scopes).toEqual(['read', 'write', 'admin'])
  })

  it('refuses bad values, naming the variable', () => {
    for (const [name, env] of [
      ['AUDIENCES', { AUDIENCES: 'sequence archive' }],
      ['AUDIENCES', { AUDIENCES: 'seq"db' }],
      ['SCOPES', { SCOPES: 'Read' }],
      ['SCOPES', { SCOPES: ' , ' }],
      ['PAT_MAX_LIFETIME', { PAT_MAX_LIFETIME: '0' }],
      ['PAT_MAX_LIFETIME', { PAT_MAX_LIFETIME: String(6 * 31_536_000) }],
      ['JOB_TOKEN_MAX_TTL', { JOB_TOKEN_MAX_TTL: '86401' }],
      ['JOB_TOKEN_MAX_TTL', { JOB_TOKEN_MAX_TTL: '12h' }],
    ] as const) {
      const found = problems(env)
      expect(found.length, JSON.stringify(env)).toBe(1)
      expect(found[0]!.startsWith(name), found[0]).toBe(true)
    }
  })
})
