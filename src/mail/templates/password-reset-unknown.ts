import { escapeHtml, htmlFrame, type MailData } from '../template.js'

// No data. Sent when a reset is asked for an address no account can be reset for (none has it,
// or its account is disabled), so that the request does the same work either way (README,
// "Password reset").

export const subject = (_: MailData, platform: string) => `${platform} password reset`

export const text = (_: MailData, platform: string) =>
  [
    `Someone asked to reset the password of a ${platform} account for this address, but no`,
    'account with this address can be reset. If it was you, you may have registered with another',
    'address. If it was not, ignore this message.',
  ].join('\n')

export const html = (_: MailData, platform: string) =>
  htmlFrame(platform, [
    `Someone asked to reset the password of a ${escapeHtml(platform)} account for this address, ` +
      'but no account with this address can be reset. If it was you, you may have registered ' +
      'with another address. If it was not, ignore this message.',
  ])
