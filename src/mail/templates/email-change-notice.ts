import { escapeHtml, field, htmlFrame, htmlLink, type MailData } from '../template.js'

// Sent to the current (old) address. Data: `old_email`, `new_email`, `link` (the email-change
// page, to cancel), `code` (the same token, for the API) and `expires_in_minutes`.

export const subject = (_: MailData, platform: string) =>
  `Your ${platform} email address is about to change`

export const text = (data: MailData, platform: string) =>
  [
    `Someone signed in to your ${platform} account asked to change its address from`,
    `${field(data, 'old_email')} to ${field(data, 'new_email')}. It changes once the new`,
    'address confirms. If this was not you, cancel the change here:',
    field(data, 'link'),
    '',
    'Or send this code to POST /v1/user/email/change/cancel:',
    field(data, 'code'),
    '',
    'Cancelling works until the change is confirmed, for at most',
    `${field(data, 'expires_in_minutes')} minutes. Then change your password too: whoever asked`,
    'knew it or had your session.',
  ].join('\n')

export const html = (data: MailData, platform: string) =>
  htmlFrame(platform, [
    `Someone signed in to your ${escapeHtml(platform)} account asked to change its address ` +
      `from ${escapeHtml(field(data, 'old_email'))} to ${escapeHtml(field(data, 'new_email'))}. ` +
      'It changes once the new address confirms. If this was not you, cancel the change ' +
      `here:<br>${htmlLink(field(data, 'link'))}`,
    'Or send this code to <code>POST /v1/user/email/change/cancel</code>:' +
      `<br><code>${escapeHtml(field(data, 'code'))}</code>`,
    'Cancelling works until the change is confirmed, for at most ' +
      `${escapeHtml(field(data, 'expires_in_minutes'))} minutes. Then change your password ` +
      'too: whoever asked knew it or had your session.',
  ])
