import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Page,
  type Request,
} from 'playwright-core'

/** Debian's Chromium (apt package `chromium`; `.ci/run` installs it). */
export const CHROMIUM = process.env.TEST_CHROMIUM ?? '/usr/bin/chromium'

/**
 * Why the browser tests cannot run here, or undefined when they can. Under CI=true a missing
 * Chromium is an error, not a skip: CI installs it and must run these tests.
 */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined
  const reason = `${CHROMIUM} is not installed (apt-get install chromium)`
  if (process.env.CI === 'true') throw new Error(`${reason}: CI must run the browser tests`)
  console.warn(`\n[tessera] Skipping browser tests: ${reason}.\n`)
  return reason
}

/**
 * The machine has no internet: without these, Chromium keeps trying to reach Google's services
 * and its connections are refused many at a time.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export interface TestBrowser {
  /** A fresh profile: its own cookies and storage. */
  newContext(): Promise<BrowserContext>
  /** A page in a fresh context that records every request it makes (`requests`). */
  newPage(): Promise<RecordingPage>
  close(): Promise<void>
}

export interface RecordingPage {
  page: Page
  context: BrowserContext
  /** Every URL the page requested, in order (documents, scripts, styles, fetches, images). */
  requests: string[]
}

/**
 * The worker's Chromium, launched on first use and shared by the files the worker runs (they share
 * their imports: vitest.config.ts): each caller gets fresh contexts, so nothing of one test's
 * cookies or storage reaches another, and the launch (a second or two of CPU) happens once.
 * Chromium exits with the worker (playwright's pipe to it closes).
 */
let shared: Promise<Browser> | undefined

function sharedBrowser(): Promise<Browser> {
  shared ??= chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }).then(
    (browser) => {
      browser.once('disconnected', () => {
        shared = undefined
      })
      return browser
    },
    (error: unknown) => {
      shared = undefined
      throw error
    },
  )
  return shared
}

/** A real headless Chromium; each context has a fresh temporary profile. */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await sharedBrowser()
  const contexts: BrowserContext[] = []
  const newContext = async () => {
    const context = await browser.newContext()
    contexts.push(context)
    return context
  }
  return {
    newContext,
    async newPage() {
      const context = await newContext()
      const page = await context.newPage()
      const requests: string[] = []
      page.on('request', (request: Request) => requests.push(request.url()))
      return { page, context, requests }
    },
    async close() {
      await Promise.all(contexts.map((c) => c.close().catch(() => {})))
    },
  }
}

/** A TCP port free on 127.0.0.1 now, for a server whose URL must be known before it starts. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address === null || typeof address === 'string') reject(new Error('no port'))
        else resolve(address.port)
      })
    })
  })
}
