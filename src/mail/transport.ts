import { randomUUID } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Transporter } from 'nodemailer'
import type { Config } from '../config/index.js'
import { describeSmtp } from './smtp-url.js'

export interface OutgoingMail {
  to: string
  subject: string
  text: string
  html: string
}

/** Where mail goes: an SMTP server, or the outbox folder when SMTP_URL is unset. */
export interface MailTransport {
  /** For the start-up log: the server (without credentials) or the folder. */
  readonly description: string
  /** True for the outbox: the log warns that nothing leaves the machine. */
  readonly development: boolean
  /** Resolves once the server accepted the message; rejects with the failure otherwise. */
  send(mail: OutgoingMail): Promise<void>
  close(): void
}

export interface MailTransportDeps {
  config: Pick<Config, 'mail' | 'databaseUrl'>
}

/**
 * Connecting, the greeting and an idle socket each give up after these: one attempt ends well
 * within the queue's claim (src/mail/queue.ts CLAIM_MS).
 */
const CONNECTION_TIMEOUT_MS = 10_000
const GREETING_TIMEOUT_MS = 10_000
const SOCKET_TIMEOUT_MS = 30_000

export function createMailTransport(deps: MailTransportDeps): MailTransport {
  const { smtp, from } = deps.config.mail
  if (smtp === undefined) return outboxTransport(outboxDirectory(deps.config), from)
  const transporter = lazyTransporter({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    // STARTTLS is required on smtp:// unless the URL says tls=off (README, "Mail").
    requireTLS: !smtp.secure && smtp.startTls === 'required',
    ignoreTLS: !smtp.secure && smtp.startTls === 'off',
    ...(smtp.user === undefined ? {} : { auth: { user: smtp.user, pass: smtp.password ?? '' } }),
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
  })
  return {
    description: describeSmtp(smtp),
    development: false,
    async send(mail) {
      await (await transporter.get()).sendMail({ from, ...mail })
    },
    close: () => transporter.close(),
  }
}

/**
 * MAIL_OUTBOX_DIR, else `outbox/` in the data directory: the SQLite file's folder, or `./data`
 * (where `npm start` keeps its database) for PostgreSQL and in-memory SQLite.
 */
export function outboxDirectory(config: Pick<Config, 'mail' | 'databaseUrl'>): string {
  if (config.mail.outboxDir !== undefined) return resolve(config.mail.outboxDir)
  const file = config.databaseUrl.startsWith('sqlite:')
    ? config.databaseUrl.slice('sqlite:'.length)
    : ''
  const dataDir = file === '' || file === ':memory:' ? resolve('data') : dirname(resolve(file))
  return join(dataDir, 'outbox')
}

/**
 * Each message as one `.eml` file (what a mail client opens), readable by the owner only: reset
 * links are credentials. The folder is made on the first message.
 */
function outboxTransport(dir: string, from: string): MailTransport {
  const transporter = lazyTransporter({
    streamTransport: true,
    buffer: true,
    newline: 'unix',
  })
  return {
    description: dir,
    development: true,
    async send(mail) {
      const info = await (await transporter.get()).sendMail({ from, ...mail })
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID()}.eml`
      writeFileSync(join(dir, name), info.message as Buffer, { mode: 0o600 })
    },
    close: () => transporter.close(),
  }
}

/**
 * nodemailer, loaded and set up on the first message: one of the larger packages a server would
 * otherwise load before it can answer (docs/performance.md, "Start-up"), for mail that most
 * processes send rarely.
 */
function lazyTransporter(options: Parameters<typeof import('nodemailer').createTransport>[0]) {
  let transporter: Promise<Transporter> | undefined
  let closed = false
  return {
    get(): Promise<Transporter> {
      transporter ??= import('nodemailer').then(({ default: nodemailer }) => {
        const made = nodemailer.createTransport(options)
        if (closed) made.close()
        return made
      })
      return transporter
    },
    close(): void {
      closed = true
      void transporter?.then((made) => made.close())
    },
  }
}
