import type { MailTemplate } from '../template.js'
import * as emailChangeConfirm from './email-change-confirm.js'
import * as emailChangeNotice from './email-change-notice.js'
import * as passwordReset from './password-reset.js'
import * as passwordResetFederated from './password-reset-federated.js'
import * as passwordResetNotice from './password-reset-notice.js'
import * as passwordResetUnknown from './password-reset-unknown.js'
import * as recoveryCodeUsed from './recovery-code-used.js'
import * as verifyEmail from './verify-email.js'

/** Every mail Tessera sends, by the name a queued row carries (`mail_queue.template`). */
export const MAIL_TEMPLATES = {
  'password-reset': passwordReset,
  'password-reset-notice': passwordResetNotice,
  'password-reset-federated': passwordResetFederated,
  'password-reset-unknown': passwordResetUnknown,
  'verify-email': verifyEmail,
  'email-change-confirm': emailChangeConfirm,
  'email-change-notice': emailChangeNotice,
  'recovery-code-used': recoveryCodeUsed,
} satisfies Record<string, MailTemplate>

export type MailTemplateName = keyof typeof MAIL_TEMPLATES

export function isMailTemplateName(name: string): name is MailTemplateName {
  return Object.hasOwn(MAIL_TEMPLATES, name)
}
