/**
 * Configuration (README, "Configuration"): the documented defaults, one clear error per bad
 * variable (all of them at once, never echoing a secret), and a CLI that stops at once on them.
 */
import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ConfigError, type Env, loadConfig } from '../../src/config/index.js'

/** The ConfigError `env` raises (fails the test when loadConfig accepts it). */
function rejection(env: Env): ConfigError {
  try {
    loadConfig(env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`)
}

describe('loadConfig defaults', () => {
  it('an empty environment gives the defaults of the README', () => {
    const config = loadConfig({})
    expect(config).toMatchObject({
      port: 8000,
      host: '0.0.0.0',
      databaseUrl: 'sqlite:./data/tessera.db',
      issuer: 'http://localhost:8000',
      audience: 'tessera',
      accessTokenTtl: 900,
      refreshTokenTtl: 2_592_000,
      refreshReuseInterval: 10,
      serviceSecret: undefined,
      keyEncryptionKey: undefined,
      argon2: { memoryKiB: 19_456, timeCost: 2, parallelism: 1 },
      selfAssignableRoles: ['researcher'],
      keysMaxAge: 300,
      keyRotationDelay: 360,
      logLevel: 'info',
      trustProxy: [],
      corsOrigins: [],
      browserSessionTtl: 36_000,
      browserSessionIdleTtl: 1_800,
    })
    // Device login (README, "Device login"): no extra clients, the documented entry limits.
    expect(config.oauth.deviceClients).toEqual([])
    expect(config.rateLimits).toMatchObject({ userCodePerSession: 10, userCodePerIp: 30 })
    expect(
      loadConfig({ OAUTH_DEVICE_CLIENTS: 'sync-tool, lab.agent_2' }).oauth.deviceClients,
    ).toEqual(['sync-tool', 'lab.agent_2'])
  })

  it('KEY_ROTATION_DELAY defaults to KEYS_MAX_AGE + the verifier cooldown + a margin', () => {
    // README, "Keys": by then every verifier that cached the keys before `keys rotate` has the
    // next key.
    expect(loadConfig({ KEYS_MAX_AGE: '60' }).keyRotationDelay).toBe(120)
    expect(loadConfig({ KEYS_MAX_AGE: '60', KEY_ROTATION_DELAY: '10' }).keyRotationDelay).toBe(10)
    expect(loadConfig({ KEY_ROTATION_DELAY: '0' }).keyRotationDelay).toBe(0)
  })

  it('empty strings count as unset', () => {
    expect(loadConfig({ PORT: '', SERVICE_SECRET: '', LOG_LEVEL: '' })).toMatchObject({
      port: 8000,
      serviceSecret: undefined,
      logLevel: 'info',
    })
  })

  it('good values are read and converted', () => {
    const config = loadConfig({
      PORT: '9000',
      DATABASE_URL: 'postgres://tessera@db:5432/tessera',
      TESSERA_ISSUER: 'https://id.example.org/',
      ACCESS_TOKEN_TTL: '300',
      SERVICE_SECRET: 's'.repeat(16),
      KEY_ENCRYPTION_KEY: 'k'.repeat(32),
      SELF_ASSIGNABLE_ROLES: 'researcher, curator',
      TRUST_PROXY: '10.0.0.1, 10.0.0.0/8 ,::ffff:192.0.2.7, fd00::/8',
      CORS_ORIGINS: 'https://app.example.org, http://localhost:3000,http://[::1]:8080',
    })
    expect(config).toMatchObject({
      corsOrigins: ['https://app.example.org', 'http://localhost:3000', 'http://[::1]:8080'],
      trustProxy: ['10.0.0.1', '10.0.0.0/8', '192.0.2.7', 'fd00::/8'],
      port: 9000,
      databaseUrl: 'postgres://tessera@db:5432/tessera',
      issuer: 'https://id.example.org',
      accessTokenTtl: 300,
      serviceSecret: 's'.repeat(16),
      keyEncryptionKey: 'k'.repeat(32),
      selfAssignableRoles: ['researcher', 'curator'],
    })
  })
})

describe('loadConfig refuses bad values, naming the variable', () => {
  const bad: [name: string, env: Env][] = [
    ['PORT', { PORT: 'abc' }],
    ['PORT', { PORT: '70000' }],
    ['PORT', { PORT: '-1' }],
    ['PORT', { PORT: '80.5' }],
    ['ACCESS_TOKEN_TTL', { ACCESS_TOKEN_TTL: '-5' }],
    ['ACCESS_TOKEN_TTL', { ACCESS_TOKEN_TTL: '0' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
    ['DATABASE_URL', { DATABASE_URL: 'sqlite:' }],
    ['TESSERA_ISSUER', { TESSERA_ISSUER: 'ftp://x' }],
    ['TESSERA_ISSUER', { TESSERA_ISSUER: 'localhost:8000' }],
    ['SERVICE_SECRET', { SERVICE_SECRET: 'short' }],
    ['KEY_ENCRYPTION_KEY', { KEY_ENCRYPTION_KEY: 'k'.repeat(31) }],
    ['ARGON2_MEMORY_KIB', { ARGON2_MEMORY_KIB: '1024' }],
    ['ARGON2_TIME_COST', { ARGON2_TIME_COST: '0' }],
    ['SELF_ASSIGNABLE_ROLES', { SELF_ASSIGNABLE_ROLES: 'researcher,admin' }],
    ['SELF_ASSIGNABLE_ROLES', { SELF_ASSIGNABLE_ROLES: 'Superuser' }],
    ['REFRESH_REUSE_INTERVAL', { REFRESH_REUSE_INTERVAL: '301' }],
    ['KEY_ROTATION_DELAY', { KEY_ROTATION_DELAY: '-1' }],
    ['KEY_ROTATION_DELAY', { KEY_ROTATION_DELAY: '1.5' }],
    ['KEY_ROTATION_DELAY', { KEY_ROTATION_DELAY: '604801' }],
    ['REFRESH_REUSE_INTERVAL', { REFRESH_REUSE_INTERVAL: '30', ACCESS_TOKEN_TTL: '30' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'maybe' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'true' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'TRUE' }],
    ['TRUST_PROXY', { TRUST_PROXY: '10.0.0.0/33' }],
    ['TRUST_PROXY', { TRUST_PROXY: '10.0.0.1, 10.0.0.300' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'fd00::/129' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
    ['OAUTH_DEVICE_CLIENTS', { OAUTH_DEVICE_CLIENTS: 'sync-tool, bad id' }],
    ['OAUTH_DEVICE_CLIENTS', { OAUTH_DEVICE_CLIENTS: 'x'.repeat(65) }],
    ['RATE_LIMIT_USER_CODE_PER_SESSION', { RATE_LIMIT_USER_CODE_PER_SESSION: '-1' }],
    ['RATE_LIMIT_USER_CODE_PER_IP', { RATE_LIMIT_USER_CODE_PER_IP: 'many' }],
    ['REFRESH_TOKEN_TTL', { REFRESH_TOKEN_TTL: '7200', SESSION_ABSOLUTE_TTL: '3600' }],
    ['BROWSER_SESSION_TTL', { BROWSER_SESSION_TTL: '59' }],
    ['BROWSER_SESSION_IDLE_TTL', { BROWSER_SESSION_IDLE_TTL: '0' }],
    ['BROWSER_SESSION_IDLE_TTL', { BROWSER_SESSION_TTL: '600', BROWSER_SESSION_IDLE_TTL: '601' }],
  ]
  for (const [name, env] of bad) {
    it(`${JSON.stringify(env)} names ${name}`, () => {
      const error = rejection(env)
      expect(error.message).toContain(name)
      expect(error.problems.some((p) => p.includes(name))).toBe(true)
    })
  }

  it('CORS_ORIGINS takes exact origins only, and says how to write one', () => {
    // Browsers send Origin as the URL's origin: any other spelling could never match.
    const bad: Array<[string, string]> = [
      ['*', 'wildcards are not allowed'],
      ['https://*.example.org', 'wildcards are not allowed'],
      ['https://app.example.org/', 'must be written as https://app.example.org'],
      ['https://app.example.org/callback', 'must be written as https://app.example.org'],
      ['https://app.example.org:443', 'must be written as https://app.example.org'],
      ['HTTPS://App.Example.org', 'must be written as https://app.example.org'],
      ['https://user@app.example.org', 'must be an origin only'],
      ['https://app.example.org?x=1', 'must be an origin only'],
      ['ftp://files.example.org', 'must be an http or https origin'],
      ['app.example.org', 'is not an origin'],
      ['null', 'is not an origin'],
    ]
    for (const [value, message] of bad) {
      const error = rejection({ CORS_ORIGINS: `https://ok.example.org,${value}` })
      expect(error.problems).toHaveLength(1)
      expect(error.problems[0]!.startsWith(`CORS_ORIGINS entry "${value}"`)).toBe(true)
      expect(error.problems[0]).toContain(message)
    }
  })

  it('reports every bad variable at once', () => {
    const error = rejection({
      PORT: 'abc',
      DATABASE_URL: 'mysql://x',
      LOG_LEVEL: 'loud',
      ARGON2_MEMORY_KIB: '1024',
      REFRESH_TOKEN_TTL: '7200',
      SESSION_ABSOLUTE_TTL: '3600',
    })
    for (const name of [
      'PORT',
      'DATABASE_URL',
      'LOG_LEVEL',
      'ARGON2_MEMORY_KIB',
      'REFRESH_TOKEN_TTL',
    ]) {
      expect(
        error.problems.filter((p) => p.includes(name)),
        name,
      ).toHaveLength(1)
    }
    expect(error.problems).toHaveLength(5)
  })

  it('never echoes a rejected secret', () => {
    const secrets: Env[] = [
      { SERVICE_SECRET: 'hunter2-secret' },
      { KEY_ENCRYPTION_KEY: 'correct-horse-battery' },
      {
        SERVICE_SECRET: 'hunter2-secret',
        KEY_ENCRYPTION_KEY: 'correct-horse-battery',
        PORT: 'abc',
      },
    ]
    for (const env of secrets) {
      const error = rejection(env)
      for (const value of [env.SERVICE_SECRET, env.KEY_ENCRYPTION_KEY]) {
        if (value === undefined) continue
        expect(error.message).not.toContain(value)
        expect(error.message).not.toContain(value.slice(0, 6))
        expect(JSON.stringify(error.problems)).not.toContain(value)
      }
    }
  })
})

describe('tessera serve with a bad environment', () => {
  it('exits 1 within seconds, naming PORT on stderr and echoing no secret', async () => {
    const started = Date.now()
    const child = spawn(process.execPath, ['bin/tessera.cjs', 'serve'], {
      cwd: process.cwd(),
      env: {
        ...process.env,
        PORT: 'abc',
        HOST: '127.0.0.1',
        DATABASE_URL: 'sqlite::memory:',
        SERVICE_SECRET: 'hunter2-secret',
        LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    let stdout = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => {
      // A server that started despite the bad PORT would never exit by itself.
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        resolve(null)
      }, 20_000)
      child.on('exit', (exitCode) => {
        clearTimeout(timer)
        resolve(exitCode)
      })
    })
    expect(code, stderr).toBe(1)
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(stderr).toContain('PORT')
    expect(stderr).toContain('SERVICE_SECRET')
    expect(stderr + stdout).not.toContain('hunter2-secret')
    // One clear message, not a stack trace.
    expect(stderr).not.toMatch(/\n\s+at /)
  })
})
