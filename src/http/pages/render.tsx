import type { Context } from 'hono'
import { html } from 'hono/html'
import type { Child } from 'hono/jsx'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { TesseraError } from '../../errors.js'
import type { AppEnv } from '../env.js'
import { asTesseraError, problemHeaders, problemResponse } from '../problem.js'
import { refusalNotice } from './messages.js'
import { wantsHtml } from './page-kit.js'
import { ErrorPage } from './views/error.js'

/** A whole page: the doctype and the rendered view, with `status`. */
export function renderPage(
  c: Context<AppEnv>,
  page: Child,
  status = 200,
): Response | Promise<Response> {
  // Statuses come from TesseraError, whose codes all have a body (never 1xx, 204 or 304).
  return c.html(html`<!DOCTYPE html>${page}`, status as ContentfulStatusCode)
}

/**
 * A page shown in place of a form the server refused (the form again, with the reason): the
 * refusal's status and the headers of its problem document (`Retry-After`, `WWW-Authenticate`),
 * so that a client sees the same answer as from the API.
 */
export function renderRefusal(
  c: Context<AppEnv>,
  error: TesseraError,
  page: Child,
): Response | Promise<Response> {
  for (const [name, value] of problemHeaders(error)) c.header(name, value)
  return renderPage(c, page, error.status)
}

/**
 * The pages' error handler (README, "Pages"): a browser (`Accept: text/html`) gets a page with the
 * fixed text and the stable code of the refusal; any other client the problem document the API
 * would answer. Same status, same code.
 */
export function pageError(error: Error, c: Context<AppEnv>): Response | Promise<Response> {
  const refusal = asTesseraError(error, c)
  if (!wantsHtml(c)) return problemResponse(refusal)
  const notice = refusalNotice(refusal)
  return renderRefusal(
    c,
    refusal,
    <ErrorPage
      status={refusal.status}
      code={refusal.code}
      title={refusal.title}
      text={notice.text}
      detail={notice.detail}
    />,
  )
}
