import { escapeHtml, field, htmlFrame, htmlLink, type MailData } from '../template.js'

// Data: `providers` (the labels of the providers the account signs in with, comma-separated) and
// `link` (the sign-in page). The account has no password to reset.

export const subject = (_: MailData, platform: string) => `How you sign in to ${platform}`

export const text = (data: MailData, platform: string) =>
  [
    `Someone (hopefully you) asked to reset the password of your ${platform} account.`,
    `This account has no password: it signs in with ${field(data, 'providers')}.`,
    '',
    'Sign in with it here:',
    field(data, 'link'),
  ].join('\n')

export const html = (data: MailData, platform: string) =>
  htmlFrame(platform, [
    `Someone (hopefully you) asked to reset the password of your ${escapeHtml(platform)} ` +
      'account.',
    `This account has no password: it signs in with ${escapeHtml(field(data, 'providers'))}.`,
    `Sign in with it here:<br>${htmlLink(field(data, 'link'))}`,
  ])
