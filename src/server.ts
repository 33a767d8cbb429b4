import { type ServerType, serve } from '@hono/node-server'
import type { Config } from './config/index.js'
import { createApp } from './http/app.js'
import { type Tessera, type TesseraOptions, createTessera } from './tessera.js'

export interface RunningServer {
  tessera: Tessera
  server: ServerType
  /** The base URL the server answers on (useful with PORT=0). */
  url: string
  close(): Promise<void>
}

/** Starts Tessera on `config.host:config.port` and resolves once it is listening. */
export async function startServer(config: Config, options: TesseraOptions = {}): Promise<RunningServer> {
  const tessera = await createTessera(config, options)
  const app = createApp(tessera)
  const { server, port } = await new Promise<{ server: ServerType; port: number }>((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) =>
      resolve({ server, port: info.port }),
    )
    server.once('error', reject)
  })
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host
  let closing: Promise<void> | undefined
  return {
    tessera,
    server,
    url: `http://${host}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Idle keep-alive sockets would hold close() open.
        ;(server as { closeIdleConnections?: () => void }).closeIdleConnections?.()
      }).then(() => tessera.close())
      return closing
    },
  }
}
