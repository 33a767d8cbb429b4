import { escapeHtml, field, htmlFrame, htmlLink, type MailData } from '../template.js'

// Sent to the new address. Data: `old_email`, `new_email`, `link` (the email-change page),
// `code` (the same token, for the API) and `expires_in_minutes`.

export const subject = (_: MailData, platform: string) =>
  `Confirm the new email address of your ${platform} account`

export const text = (data: MailData, platform: string) =>
  [
    `Someone signed in to the ${platform} account of ${field(data, 'old_email')} asked to move`,
    `it to this address, ${field(data, 'new_email')}. To confirm, open:`,
    field(data, 'link'),
    '',
    'Or send this code to POST /v1/user/email/change/confirm:',
    field(data, 'code'),
    '',
    `The link and the code work once, for ${field(data, 'expires_in_minutes')} minutes.`,
    'If you did not ask for this, ignore this message: nothing changes.',
  ].join('\n')

export const html = (data: MailData, platform: string) =>
  htmlFrame(platform, [
    `Someone signed in to the ${escapeHtml(platform)} account of ` +
      `${escapeHtml(field(data, 'old_email'))} asked to move it to this address, ` +
      `${escapeHtml(field(data, 'new_email'))}. To confirm, open:<br>` +
      htmlLink(field(data, 'link')),
    'Or send this code to <code>POST /v1/user/email/change/confirm</code>:' +
      `<br><code>${escapeHtml(field(data, 'code'))}</code>`,
    `The link and the code work once, for ${escapeHtml(field(data, 'expires_in_minutes'))} ` +
      'minutes. If you did not ask for this, ignore this message: nothing changes.',
  ])
