import { escapeHtml, field, htmlFrame, htmlLink, type MailData } from '../template.js'

// Data: `link` (the page to request another reset), sent after a reset succeeded.

export const subject = (_: MailData, platform: string) => `Your ${platform} password was reset`

export const text = (data: MailData, platform: string) =>
  [
    `The password of your ${platform} account was just reset, and every session was signed out.`,
    '',
    'If that was not you, someone can read your mail: secure your mailbox, then reset the',
    'password again here:',
    field(data, 'link'),
  ].join('\n')

export const html = (data: MailData, platform: string) =>
  htmlFrame(platform, [
    `The password of your ${escapeHtml(platform)} account was just reset, and every session ` +
      'was signed out.',
    'If that was not you, someone can read your mail: secure your mailbox, then reset the ' +
      `password again here:<br>${htmlLink(field(data, 'link'))}`,
  ])
