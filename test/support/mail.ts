import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type ParsedMail, simpleParser } from 'mailparser'
import { expect } from 'vitest'

/** The reset code of a password-reset mail, read from its text part (`tessera_pr_...`). */
export function resetCodeOf(mail: ParsedMail): string {
  const code = /\btessera_pr_[A-Za-z0-9_-]{43}\b/.exec(mail.text ?? '')?.[0]
  expect(code, mail.text).toBeDefined()
  return code!
}

/** The reset page link of a password-reset mail, from its HTML part's first link. */
export function resetLinkOf(mail: ParsedMail): string {
  const href = /href="([^"]+\/reset-password\?token=[^"]+)"/.exec(String(mail.html))?.[1]
  expect(href, String(mail.html)).toBeDefined()
  return href!.replaceAll('&amp;', '&')
}

/** The reset code of the mail to `to` in an outbox folder (README, "Mail"), the last one. */
export async function outboxResetCode(dir: string, to: string): Promise<string> {
  let code: string | undefined
  for (const file of existsSync(dir) ? readdirSync(dir).sort() : []) {
    const mail = await simpleParser(readFileSync(join(dir, file)))
    const addresses = [mail.to ?? []].flat().flatMap((a) => a.value.map((v) => v.address))
    if (addresses.includes(to) && /tessera_pr_/.test(mail.text ?? '')) code = resetCodeOf(mail)
  }
  if (code === undefined) throw new Error(`no reset mail to ${to} in ${dir}`)
  return code
}
