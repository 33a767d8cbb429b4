import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './process.js'

/** Debian's nginx (apt package `nginx`; `.ci/run` installs it). */
export const NGINX = process.env.TEST_NGINX ?? '/usr/sbin/nginx'

const READY_TIMEOUT_MS = 10_000

/**
 * Why the nginx tests cannot run here, or undefined when they can. Under CI=true a missing nginx
 * is an error, not a skip: CI installs it and must run these tests (as for Chromium,
 * test/support/browser.ts).
 */
export function nginxMissing(): string | undefined {
  if (existsSync(NGINX)) return undefined
  const reason = `${NGINX} is not installed (apt-get install nginx)`
  if (process.env.CI === 'true') throw new Error(`${reason}: CI must run the nginx tests`)
  console.warn(`\n[tessera] Skipping nginx tests: ${reason}.\n`)
  return reason
}

export interface RunningNginx {
  /** `http://127.0.0.1:<port>` */
  url: string
  /** What nginx wrote to stderr (its error log), for failure messages. */
  output(): string
  close(): Promise<void>
}

export interface NginxOptions {
  /** Directives of the `http` block (upstreams and such). */
  http: string
  /** Directives of the one `server` block, which listens on a free loopback port. */
  server: string
}

/**
 * A real nginx as a child of the test process: its own prefix in a temporary folder (pid file,
 * temp paths), in the foreground (`daemon off`) as one process (`master_process off`), its error
 * log on stderr. Resolves once it accepts connections.
 */
export async function startNginx(options: NginxOptions): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-nginx-'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${options.http}
  server {
    listen 127.0.0.1:${port};
${options.server}
  }
}
`,
  )
  // -e: the error log before the configuration is read, which would otherwise be /var/log/nginx.
  const child = spawn(NGINX, ['-p', `${dir}/`, '-c', conf, '-e', 'stderr'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let output = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let hasExited = false
  void exited.then(() => (hasExited = true))
  const close = async () => {
    if (!hasExited) {
      child.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitForPort(port, child, () => hasExited)
  } catch (error) {
    await close()
    throw new Error(`nginx did not start: ${(error as Error).message}\n${output}`)
  }
  return { url: `http://127.0.0.1:${port}`, output: () => output, close }
}

async function waitForPort(port: number, child: ChildProcess, exited: () => boolean) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    if (exited()) throw new Error(`exited with ${child.exitCode}`)
    if (await accepts(port)) return
    if (Date.now() > deadline) throw new Error(`not listening after ${READY_TIMEOUT_MS} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
