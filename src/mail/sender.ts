import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Config } from '../config/index.js'
import type { Database } from '../db/schema.js'
import type { Logger } from '../logger.js'
import {
  type ClaimedMail,
  claimDueMail,
  MAX_ATTEMPTS,
  removeMail,
  retryMailLater,
} from './queue.js'
import { openMailData } from './sealed.js'
import type { RenderedMail } from './template.js'
import { isMailTemplateName, MAIL_TEMPLATES } from './templates/index.js'
import type { MailTransport } from './transport.js'

export interface MailSenderDeps {
  db: Kysely<Database>
  clock: Clock
  config: Pick<Config, 'mail' | 'keyEncryptionKey'>
  logger: Pick<Logger, 'warn' | 'info'>
  transport: MailTransport
  /**
   * Work that queues mail, done at the start of every pass: the password reset requests answered
   * since the last one (src/server.ts). A failure is logged and the pass goes on to send.
   */
  beforeEachPass?: () => Promise<void>
  /** Milliseconds between looks at the queue; default 1 s. Only tests change it. */
  pollMs?: number
}

export interface MailSender {
  /** One pass: its work first, then what is due now is sent (the loop calls it; tests may too). */
  sendDue(): Promise<void>
  /** Stops the loop after the pass in progress and closes the transport. */
  stop(): Promise<void>
}

const POLL_MS = 1_000
const BATCH = 20

/**
 * The queue's sender, started with the server on every replica (README, "Mail"): each pass claims
 * due rows (one replica per row, src/mail/queue.ts), renders and sends each, deletes it once the
 * server took it, or puts it back for a later attempt with exponential backoff. A mail given up
 * after MAX_ATTEMPTS is logged by id and template only: never its recipient's link or body.
 */
export function startMailSender(deps: MailSenderDeps): MailSender {
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> = Promise.resolve()
  let stopped = false

  async function sendOne(mail: ClaimedMail): Promise<void> {
    let rendered: RenderedMail
    try {
      rendered = render(mail, deps.config)
    } catch (error) {
      // A row this version cannot render will never send: retrying would only repeat this.
      deps.logger.warn(
        { mailId: mail.id, template: mail.template, err: String(error) },
        'mail dropped: it cannot be rendered',
      )
      await removeMail(deps.db, mail)
      return
    }
    try {
      await deps.transport.send({ to: mail.recipient, ...rendered })
    } catch (error) {
      const attempts = mail.attempts + 1
      const reason = error instanceof Error ? error.message : String(error)
      if (attempts >= MAX_ATTEMPTS) {
        deps.logger.warn(
          { mailId: mail.id, template: mail.template, attempts, reason },
          'mail given up: the mail server did not take it',
        )
        await removeMail(deps.db, mail)
      } else {
        deps.logger.warn(
          { mailId: mail.id, template: mail.template, attempts, reason },
          'mail not sent; it will be retried',
        )
        await retryMailLater(deps.db, deps.clock, mail)
      }
      return
    }
    await removeMail(deps.db, mail)
  }

  async function sendDue(): Promise<void> {
    try {
      await deps.beforeEachPass?.()
    } catch (error) {
      deps.logger.warn({ err: error }, 'work before sending mail failed; the next pass retries it')
    }
    for (;;) {
      const batch = await claimDueMail(deps.db, deps.clock, BATCH)
      for (const mail of batch) await sendOne(mail)
      if (batch.length < BATCH || stopped) return
    }
  }

  /** One pass at a time in this process, whoever starts it. */
  function pass(): Promise<void> {
    running = running.catch(() => {}).then(sendDue)
    return running
  }

  function schedule(): void {
    if (stopped) return
    timer = setTimeout(() => {
      pass()
        .catch((error: unknown) =>
          deps.logger.warn({ err: error }, 'sending queued mail failed; trying again shortly'),
        )
        .finally(schedule)
    }, deps.pollMs ?? POLL_MS)
    timer.unref()
  }

  if (deps.transport.development) {
    deps.logger.warn(
      `SMTP_URL is not set: mail is written to ${deps.transport.description} and not sent ` +
        '(a development default, README "Mail")',
    )
  } else {
    deps.logger.info(`sending mail through ${deps.transport.description}`)
  }
  schedule()
  return {
    sendDue: pass,
    async stop() {
      stopped = true
      clearTimeout(timer)
      await running.catch(() => {})
      deps.transport.close()
    },
  }
}

function render(
  mail: ClaimedMail,
  config: Pick<Config, 'mail' | 'keyEncryptionKey'>,
): RenderedMail {
  if (!isMailTemplateName(mail.template)) throw new Error('unknown template')
  const template = MAIL_TEMPLATES[mail.template]
  const queued = JSON.parse(mail.data) as Record<string, string>
  const data = openMailData(config.keyEncryptionKey, mail.recipient, queued)
  const { platformName } = config.mail
  return {
    subject: template.subject(data, platformName),
    text: template.text(data, platformName),
    html: template.html(data, platformName),
  }
}
