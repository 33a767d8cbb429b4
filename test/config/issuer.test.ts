/**
 * The issuer default (README, "Configuration"): with TESSERA_ISSUER unset the tokens name the port
 * the server is configured on, and a plain-http issuer on another host is warned about at start.
 */
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { insecureIssuerWarning, loadConfig } from '../../src/config/index.js'
import { makeTestApp } from '../support/app.js'

describe('the issuer follows PORT when TESSERA_ISSUER is unset', () => {
  it('is http://localhost:PORT, and TESSERA_ISSUER still wins', () => {
    expect(loadConfig({ PORT: '9100' }).issuer).toBe('http://localhost:9100')
    expect(loadConfig({}).issuer).toBe('http://localhost:8000')
    expect(loadConfig({ PORT: '9100', TESSERA_ISSUER: 'https://id.example.org/' }).issuer).toBe(
      'https://id.example.org',
    )
    // Any free port is not known before the server listens: the documented default stays.
    expect(loadConfig({ PORT: '0' }).issuer).toBe('http://localhost:8000')
  })

  it('the default mail sender follows it too', () => {
    expect(loadConfig({ TESSERA_ISSUER: 'https://id.example.org' }).mail.from).toBe(
      '"Tessera" <no-reply@id.example.org>',
    )
  })
})

describe('a plain-http issuer on another host is warned about', () => {
  it('warns for http on a network host, not for https or loopback', () => {
    expect(insecureIssuerWarning('http://id.example.org')).toMatch(/plain http/)
    expect(insecureIssuerWarning('http://10.0.0.5:8000')).toMatch(/plain http/)
    for (const quiet of [
      'https://id.example.org',
      'http://localhost:8000',
      'http://127.0.0.1:9000',
      'http://[::1]:8000',
    ]) {
      expect(insecureIssuerWarning(quiet)).toBeUndefined()
    }
  })

  it('the server logs the warning at start', async () => {
    const lines: string[] = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) })
    const app = await makeTestApp({ logger, env: { TESSERA_ISSUER: 'http://id.example.org' } })
    try {
      const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string })
      expect(warnings.some((w) => w.level === 40 && /plain http/.test(w.msg))).toBe(true)
    } finally {
      await app.close()
    }
    const quiet: string[] = []
    const quietLogger = pino({ level: 'warn' }, { write: (line: string) => void quiet.push(line) })
    const local = await makeTestApp({ logger: quietLogger })
    try {
      expect(quiet.join('\n')).not.toMatch(/plain http/)
    } finally {
      await local.close()
    }
  })
})

describe('the retention variables', () => {
  it('default to an hourly pass and a year of audit events, and are validated', () => {
    expect(loadConfig({})).toMatchObject({ pruneInterval: 3600, auditRetentionDays: 365 })
    expect(loadConfig({ PRUNE_INTERVAL: '0', AUDIT_RETENTION_DAYS: '30' })).toMatchObject({
      pruneInterval: 0,
      auditRetentionDays: 30,
    })
    for (const env of [
      { PRUNE_INTERVAL: '-1' },
      { PRUNE_INTERVAL: 'hourly' },
      { AUDIT_RETENTION_DAYS: '0' },
      { AUDIT_RETENTION_DAYS: '36501' },
    ]) {
      expect(() => loadConfig(env)).toThrow(Object.keys(env)[0])
    }
  })
})
