import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A stand-in for a platform's web front-end: one blank HTML page on its own port, so a real
 * browser has a page of another origin (`http://localhost:<port>`, `http://127.0.0.1:<port>`) to
 * run the front-end's fetches from. What the front-end does is up to the test
 * (`page.evaluate`).
 */
export interface FrontEnd {
  port: number
  /** `http://localhost:<port>`: another site than a Tessera on 127.0.0.1. */
  origin: string
  close(): Promise<void>
}

export async function startFrontEnd(): Promise<FrontEnd> {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' })
    res.end('<!doctype html><html lang="en"><title>front-end</title><h1>front-end</h1></html>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    port,
    origin: `http://localhost:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
