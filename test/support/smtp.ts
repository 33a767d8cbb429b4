import { type ParsedMail, simpleParser } from 'mailparser'
import { SMTPServer } from 'smtp-server'

/**
 * A real SMTP server on loopback (smtp-server), the peer of every mail test: what Tessera sends
 * arrives here over SMTP and is read with a real MIME parser (mailparser). No TLS; with `auth` it
 * requires AUTH PLAIN/LOGIN with that user and password.
 */
export interface SmtpServerOptions {
  auth?: { user: string; password: string }
}

export interface TestSmtpServer {
  /**
   * The SMTP_URL that reaches it: `smtp://127.0.0.1:PORT?tls=off`, since this server offers no
   * STARTTLS and Tessera requires it on smtp:// otherwise (README, "Mail").
   */
  url: string
  port: number
  /** Every message received, in order of arrival. */
  messages: ParsedMail[]
  /** The envelope recipients (lower-case) of `messages`, index by index. */
  recipients: string[][]
  /**
   * The first message to `to` (envelope recipient) that no earlier call returned, waiting for
   * it up to `timeoutMs` (default 15 s).
   */
  waitForMail(to: string, timeoutMs?: number): Promise<ParsedMail>
  /** Messages to `to` received so far. */
  mailTo(to: string): ParsedMail[]
  /** While on, every recipient is refused with 451 (a server that is up but will not take mail). */
  refuse(on: boolean): void
  /** Stops listening (connections are refused) until `up()`, which listens on the same port. */
  down(): Promise<void>
  up(): Promise<void>
  stop(): Promise<void>
}

export async function startSmtpServer(options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const messages: ParsedMail[] = []
  const recipients: string[][] = []
  const returned = new Set<ParsedMail>()
  const waiters = new Set<() => void>()
  let refusing = false

  const make = () =>
    new SMTPServer({
      disabledCommands: options.auth === undefined ? ['STARTTLS', 'AUTH'] : ['STARTTLS'],
      allowInsecureAuth: true,
      authOptional: options.auth === undefined,
      logger: false,
      closeTimeout: 200,
      onAuth(auth, _session, callback) {
        const ok = auth.username === options.auth?.user && auth.password === options.auth?.password
        if (ok) callback(null, { user: auth.username })
        else callback(Object.assign(new Error('Invalid credentials'), { responseCode: 535 }))
      },
      onRcptTo(_address, _session, callback) {
        if (refusing) {
          callback(Object.assign(new Error('Try again later'), { responseCode: 451 }))
        } else callback()
      },
      onData(stream, session, callback) {
        simpleParser(stream)
          .then((mail) => {
            messages.push(mail)
            recipients.push(session.envelope.rcptTo.map((r) => r.address.toLowerCase()))
            for (const wake of waiters) wake()
            callback()
          })
          .catch((error: Error) => callback(error))
      },
    })

  let server = make()
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        const address = server.server.address()
        resolve(typeof address === 'object' && address !== null ? address.port : port)
      })
    })
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()))
  const port = await listen(0)
  let listening = true

  const mailTo = (to: string) =>
    messages.filter((_, i) => recipients[i]!.includes(to.toLowerCase()))

  return {
    url: `smtp://127.0.0.1:${port}?tls=off`,
    port,
    messages,
    recipients,
    mailTo,
    waitForMail(to, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const mail = mailTo(to).find((m) => !returned.has(m))
          if (mail === undefined) return
          returned.add(mail)
          done()
          resolve(mail)
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`no mail to ${to} within ${timeoutMs} ms`))
        }, timeoutMs)
        const done = () => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      })
    },
    refuse(on) {
      refusing = on
    },
    async down() {
      if (!listening) return
      listening = false
      await close()
    },
    async up() {
      if (listening) return
      server = make()
      await listen(port)
      listening = true
    },
    async stop() {
      if (listening) await close()
      listening = false
    },
  }
}
