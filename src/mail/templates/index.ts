import type { MailTemplate } from '../template.js'
import * as passwordReset from './password-reset.js'
import * as passwordResetFederated from './password-reset-federated.js'
import * as passwordResetNotice from './password-reset-notice.js'
import * as passwordResetUnknown from './password-reset-unknown.js'

/** Every mail Tessera sends, by the name a queued row carries (`mail_queue.template`). */
export const MAIL_TEMPLATES = {
  'password-reset': passwordReset,
  'password-reset-notice': passwordResetNotice,
  'password-reset-federated': passwordResetFederated,
  'password-reset-unknown': passwordResetUnknown,
} satisfies Record<string, MailTemplate>

export type MailTemplateName = keyof typeof MAIL_TEMPLATES

export function isMailTemplateName(name: string): name is MailTemplateName {
  return Object.hasOwn(MAIL_TEMPLATES, name)
}
