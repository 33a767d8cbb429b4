import { escapeHtml, field, htmlFrame, htmlLink, type MailData } from '../template.js'

// Data: `email` (the address to verify), `link` (the verification page, TESSERA_ISSUER-based),
// `code` (the same token, for the API) and `expires_in_hours`.

export const subject = (_: MailData, platform: string) => `Verify your ${platform} email address`

export const text = (data: MailData, platform: string) =>
  [
    `Confirm that ${field(data, 'email')} is the address of your ${platform} account:`,
    field(data, 'link'),
    '',
    'Or send this code to POST /v1/user/email/verify:',
    field(data, 'code'),
    '',
    `The link and the code work once, for ${field(data, 'expires_in_hours')} hours; only the`,
    'newest verification mail works. If you did not create an account, ignore this message.',
  ].join('\n')

export const html = (data: MailData, platform: string) =>
  htmlFrame(platform, [
    `Confirm that ${escapeHtml(field(data, 'email'))} is the address of your ` +
      `${escapeHtml(platform)} account:<br>${htmlLink(field(data, 'link'))}`,
    'Or send this code to <code>POST /v1/user/email/verify</code>:' +
      `<br><code>${escapeHtml(field(data, 'code'))}</code>`,
    `The link and the code work once, for ${escapeHtml(field(data, 'expires_in_hours'))} ` +
      'hours; only the newest verification mail works. If you did not create an account, ' +
      'ignore this message.',
  ])
