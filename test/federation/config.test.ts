import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config/index.js'

const problems = (env: Record<string, string>) => {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

describe('OAUTH_* configuration', () => {
  it('a provider is enabled only when both client id and secret are set', () => {
    expect(loadConfig({}).oauth.providers).toEqual({})
    const config = loadConfig({
      OAUTH_GOOGLE_CLIENT_ID: 'id',
      OAUTH_GOOGLE_CLIENT_SECRET: 'secret',
    })
    expect(config.oauth.providers).toEqual({
      google: { clientId: 'id', clientSecret: 'secret', issuer: 'https://accounts.google.com' },
    })
    expect(problems({ OAUTH_GITHUB_CLIENT_ID: 'id' })).toEqual([
      'OAUTH_GITHUB_CLIENT_ID and OAUTH_GITHUB_CLIENT_SECRET must be set together',
    ])
  })

  it('GitHub defaults to github.com and api.github.com; GitLab takes a self-hosted issuer', () => {
    const config = loadConfig({
      OAUTH_GITHUB_CLIENT_ID: 'id',
      OAUTH_GITHUB_CLIENT_SECRET: 's',
      OAUTH_GITLAB_CLIENT_ID: 'id',
      OAUTH_GITLAB_CLIENT_SECRET: 's',
      OAUTH_GITLAB_ISSUER: 'https://gitlab.example.org',
    })
    expect(config.oauth.providers.github).toMatchObject({
      issuer: 'https://github.com',
      apiUrl: 'https://api.github.com',
    })
    expect(config.oauth.providers.gitlab?.issuer).toBe('https://gitlab.example.org')
  })

  it('http:// provider URLs need OAUTH_ALLOW_INSECURE_ISSUERS', () => {
    const env = {
      OAUTH_ORCID_CLIENT_ID: 'id',
      OAUTH_ORCID_CLIENT_SECRET: 's',
      OAUTH_ORCID_ISSUER: 'http://127.0.0.1:9',
    }
    expect(problems(env)[0]).toMatch(/^OAUTH_ORCID_ISSUER must be an https URL/)
    expect(
      loadConfig({ ...env, OAUTH_ALLOW_INSECURE_ISSUERS: 'true' }).oauth.providers.orcid?.issuer,
    ).toBe('http://127.0.0.1:9')
  })

  it('RATE_LIMIT_OAUTH_PER_IP: default 60 per window, 0 is off, else refused', () => {
    expect(loadConfig({}).rateLimits.oauthPerIp).toBe(60)
    expect(loadConfig({ RATE_LIMIT_OAUTH_PER_IP: '0' }).rateLimits.oauthPerIp).toBe(0)
    expect(loadConfig({ RATE_LIMIT_OAUTH_PER_IP: ' 500 ' }).rateLimits.oauthPerIp).toBe(500)
    for (const bad of ['-1', '2.5', 'lots']) {
      expect(problems({ RATE_LIMIT_OAUTH_PER_IP: bad })).toEqual([
        'RATE_LIMIT_OAUTH_PER_IP must be a whole number',
      ])
    }
  })

  it('OAUTH_REDIRECT_URIS is an exact, comma-separated list of absolute URIs', () => {
    expect(loadConfig({}).oauth.redirectUris).toEqual([])
    expect(
      loadConfig({ OAUTH_REDIRECT_URIS: ' https://a.example/cb , app.example:/cb ' }).oauth
        .redirectUris,
    ).toEqual(['https://a.example/cb', 'app.example:/cb'])
    expect(problems({ OAUTH_REDIRECT_URIS: '/relative' })).toHaveLength(1)
  })
})
