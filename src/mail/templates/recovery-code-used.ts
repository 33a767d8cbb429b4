import { escapeHtml, field, htmlFrame, htmlLink, type MailData } from '../template.js'

// Data: `remaining` (unused recovery codes left) and `link` (the account page), sent when a
// recovery code was used to sign in or step up (README, "Second factors").

export const subject = (_: MailData, platform: string) =>
  `A recovery code of your ${platform} account was used`

export const text = (data: MailData, platform: string) =>
  [
    `One of the recovery codes of your ${platform} account was just used in place of your`,
    `authenticator app. ${field(data, 'remaining')} unused codes are left.`,
    '',
    'If that was not you, your password and a recovery code are known to someone else: change',
    'the password and make new recovery codes on your account page:',
    field(data, 'link'),
  ].join('\n')

export const html = (data: MailData, platform: string) =>
  htmlFrame(platform, [
    `One of the recovery codes of your ${escapeHtml(platform)} account was just used in place ` +
      `of your authenticator app. ${escapeHtml(field(data, 'remaining'))} unused codes are left.`,
    'If that was not you, your password and a recovery code are known to someone else: change ' +
      `the password and make new recovery codes on your account page:<br>${htmlLink(
        field(data, 'link'),
      )}`,
  ])
