import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { outboxDirectory } from '../../src/mail/transport.js'
import type { TestApp } from './app.js'

const returned = new Set<string>()

/**
 * The newest token with `prefix` (`tessera_ev_`, `tessera_ec_`, `tessera_ex_`) mailed to `to` by
 * an app without SMTP_URL, read from its outbox folder (README, "Mail") after sending what is due;
 * each token is returned once.
 */
export async function outboxToken(app: TestApp, to: string, prefix: string): Promise<string> {
  await app.server.mail.sendDue()
  const dir = outboxDirectory(app.server.tessera.config)
  const pattern = new RegExp(`${prefix}[A-Za-z0-9_-]{43}`, 'g')
  for (const name of readdirSync(dir).sort().reverse()) {
    const mail = await simpleParser(readFileSync(join(dir, name)))
    const recipients = [mail.to ?? []].flat().flatMap((a) => a.value.map((v) => v.address))
    if (!recipients.includes(to)) continue
    for (const token of (mail.text ?? '').match(pattern) ?? []) {
      if (returned.has(token)) continue
      returned.add(token)
      return token
    }
  }
  throw new Error(`no new ${prefix} token mailed to ${to}`)
}
