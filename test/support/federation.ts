import type { Env } from '../../src/config/index.js'
import { makeTestApp, type TestApp, type TestAppOptions } from './app.js'
import {
  CLIENT_REDIRECT_URI,
  type FakeGitHub,
  type FakeOidcProvider,
  startFakeGitHub,
  startOidcProvider,
  TESSERA_TEST_ISSUER,
} from './oidc.js'

/** An upstream stand-in from oidc.ts: the OAUTH_* variables pointing at it, and its shutdown. */
export interface Upstream {
  env(): Record<string, string>
  close(): Promise<void>
}

/**
 * The environment of a Tessera test app federating to `upstreams`: the issuer the stand-ins
 * redirect back to, the test client's redirect URI, and plain-http issuers allowed (they listen
 * on loopback). A test's own variables go after it.
 */
export function federationEnv(...upstreams: Upstream[]): Env {
  return Object.assign(
    {
      TESSERA_ISSUER: TESSERA_TEST_ISSUER,
      OAUTH_REDIRECT_URIS: CLIENT_REDIRECT_URI,
      OAUTH_ALLOW_INSECURE_ISSUERS: 'true',
    },
    ...upstreams.map((u) => u.env()),
  )
}

/** The upstream stand-ins of one test file and the apps made against them, closed together. */
export interface Federation {
  /** A real OpenID Provider (oidc-provider) for the OIDC provider names. */
  idp: FakeOidcProvider
  /** A GitHub-shaped OAuth 2 server; only when started with `{ github: true }`. */
  github: FakeGitHub | undefined
  /** federationEnv of the stand-ins, for servers a test starts itself. */
  env: Env
  /** makeTestApp with federationEnv of the stand-ins; `options.env` goes over it. */
  app(options?: TestAppOptions): Promise<TestApp>
  /** Closes every app made, then the stand-ins. */
  close(): Promise<void>
}

export interface FederationOptions {
  github?: boolean
  /**
   * The TESSERA_ISSUER the apps get and the stand-in's clients redirect back to, when a real
   * browser must reach Tessera at that URL (default: TESSERA_TEST_ISSUER, which the `Browser`
   * of oidc.ts maps to the app's loopback URL).
   */
  tesseraIssuer?: string
}

export function startFederation(
  options: FederationOptions & { github: true },
): Promise<Federation & { github: FakeGitHub }>
export function startFederation(
  options?: FederationOptions & { github?: false },
): Promise<Federation>
export async function startFederation(options: FederationOptions = {}): Promise<Federation> {
  const [idp, github] = await Promise.all([
    startOidcProvider({ tesseraIssuer: options.tesseraIssuer }),
    options.github === true ? startFakeGitHub() : undefined,
  ])
  const upstreams: Upstream[] = github === undefined ? [idp] : [idp, github]
  const env = {
    ...federationEnv(...upstreams),
    ...(options.tesseraIssuer === undefined ? {} : { TESSERA_ISSUER: options.tesseraIssuer }),
  }
  const apps: TestApp[] = []
  return {
    idp,
    github,
    env,
    async app(appOptions = {}) {
      const app = await makeTestApp({ ...appOptions, env: { ...env, ...appOptions.env } })
      apps.push(app)
      return app
    },
    async close() {
      await Promise.all(apps.map((app) => app.close()))
      await Promise.all(upstreams.map((upstream) => upstream.close()))
    },
  }
}
