/**
 * SMTP_URL (README, "Mail"): `smtps://` is TLS from the first byte (port 465 by default);
 * `smtp://` (port 587 by default) must upgrade with STARTTLS before anything is sent, unless the
 * URL ends in `?tls=off` (a relay on loopback or inside the host's network). User and password,
 * if any, are the URL's own (percent-encoded).
 */
export interface SmtpSettings {
  host: string
  port: number
  /** TLS from the start (`smtps://`). */
  secure: boolean
  /** `smtp://` only: `required` refuses a server without STARTTLS; `off` never starts TLS. */
  startTls: 'required' | 'off'
  user?: string
  password?: string
}

/**
 * The settings of an SMTP_URL, or why it is not one. The reason never repeats the URL, which may
 * hold a password.
 */
export function parseSmtpUrl(text: string): SmtpSettings | string {
  if (!URL.canParse(text)) return 'must be an smtp:// or smtps:// URL'
  const url = new URL(text)
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:')
    return 'must be an smtp:// or smtps:// URL'
  if (url.hostname === '') return 'must name the mail server'
  if (url.pathname !== '' && url.pathname !== '/') return 'must have no path'
  const secure = url.protocol === 'smtps:'
  const query = [...url.searchParams]
  const tlsOff = query.length === 1 && query[0]![0] === 'tls' && query[0]![1] === 'off'
  if (query.length > 0 && !tlsOff) return 'takes no query parameter but tls=off'
  if (tlsOff && secure) return 'smtps:// is always TLS: tls=off goes with smtp:// only'
  const settings: SmtpSettings = {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? (secure ? 465 : 587) : Number(url.port),
    secure,
    startTls: tlsOff ? 'off' : 'required',
  }
  try {
    if (url.username !== '') settings.user = decodeURIComponent(url.username)
    if (url.password !== '') settings.password = decodeURIComponent(url.password)
  } catch {
    return 'has a user or password that is not percent-encoded correctly'
  }
  return settings
}

/** The server as the start-up log names it: no user, no password. */
export function describeSmtp(settings: SmtpSettings): string {
  const tls = settings.secure ? 'TLS' : settings.startTls === 'required' ? 'STARTTLS' : 'no TLS'
  return `smtp${settings.secure ? 's' : ''}://${settings.host}:${settings.port} (${tls})`
}
