import { escapeHtml, field, htmlFrame, htmlLink, type MailData } from '../template.js'

// Data: `link` (the reset page, TESSERA_ISSUER-based), `code` (the same token, for the API) and
// `minutes` (how long both stay valid).

export const subject = (_: MailData, platform: string) => `Reset your ${platform} password`

export const text = (data: MailData, platform: string) =>
  [
    `Someone (hopefully you) asked to reset the password of your ${platform} account.`,
    '',
    'Choose a new password here:',
    field(data, 'link'),
    '',
    'Or send this code with the new password to POST /v1/user/auth/password/reset:',
    field(data, 'code'),
    '',
    `The link and the code work once, for ${field(data, 'minutes')} minutes. Resetting signs`,
    'you out everywhere. If you did not ask for this, ignore this message: your password stays.',
  ].join('\n')

export const html = (data: MailData, platform: string) =>
  htmlFrame(platform, [
    `Someone (hopefully you) asked to reset the password of your ${escapeHtml(platform)} account.`,
    `Choose a new password here:<br>${htmlLink(field(data, 'link'))}`,
    'Or send this code with the new password to <code>POST /v1/user/auth/password/reset</code>:' +
      `<br><code>${escapeHtml(field(data, 'code'))}</code>`,
    `The link and the code work once, for ${escapeHtml(field(data, 'minutes'))} minutes. ` +
      'Resetting signs you out everywhere. If you did not ask for this, ignore this message: ' +
      'your password stays.',
  ])
