/** What a template is given: its data (strings only, as queued) and the platform's name. */
export type MailData = Readonly<Record<string, string>>

/**
 * One module of `src/mail/templates/`: a message in plain text and in HTML. Renderers are pure
 * and synchronous, so the sender renders at sending time from the queued data alone.
 */
export interface MailTemplate {
  subject(data: MailData, platformName: string): string
  text(data: MailData, platformName: string): string
  html(data: MailData, platformName: string): string
}

export interface RenderedMail {
  subject: string
  text: string
  html: string
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

/** Text for an HTML element or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!)
}

/** A template's data field; a missing one is a programming error, not an empty string. */
export function field(data: MailData, name: string): string {
  const value = data[name]
  if (value === undefined) throw new Error(`mail data has no ${name}`)
  return value
}

/**
 * The HTML messages' one frame: paragraphs (already escaped HTML) in a plain, narrow column that
 * mail clients without CSS support show the same way.
 */
export function htmlFrame(platformName: string, paragraphs: string[]): string {
  const body = paragraphs.map((p) => `<p style="margin:0 0 16px">${p}</p>`).join('\n')
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>',
    escapeHtml(platformName),
    '</title></head>',
    '<body style="font-family:sans-serif;line-height:1.5;max-width:36em;margin:24px auto">',
    body,
    '</body></html>',
  ].join('')
}

/** A link paragraph: the URL as the link's text too, so it can be copied from any client. */
export function htmlLink(url: string): string {
  const href = escapeHtml(url)
  return `<a href="${href}">${href}</a>`
}
