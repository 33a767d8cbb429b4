import type { TesseraError } from '../../errors.js'
import { isProviderName, PROVIDERS } from '../../federation/provider-table.js'
import { errorMessage, type Notice } from './messages.js'
import { Layout, NoticeBox } from './views/layout.js'

/**
 * The pages a browser sees around a single-use link URL (README, "Linking from an API client"):
 * the result at `/link/done` and the refusal of a ticket, in the pages' layout. Every text is one
 * of the pages' fixed messages, chosen by a code from a closed list; nothing from the request is
 * shown.
 */
const LinkPage = ({ title, notice }: { title: string; notice: Notice }) => (
  <Layout title={title}>
    <h1>{title}</h1>
    <NoticeBox notice={notice} />
    <p>You can close this window.</p>
  </Layout>
)

/** `/link/done?linked=<provider>` or `?error=<code>`; anything else gets a neutral page. */
export function linkDonePage(query: { linked?: string; error?: string }) {
  if (query.linked !== undefined && isProviderName(query.linked)) {
    const provider = PROVIDERS[query.linked]
    const verified = provider.grantsAcademic ? ' Your account is now verified.' : ''
    const text = `Your ${provider.label} identity is now linked to your Tessera account.${verified}`
    return <LinkPage title={`${provider.label} linked`} notice={{ kind: 'success', text }} />
  }
  const error = errorMessage(query.error)
  if (error !== undefined) {
    const text = `${error} Nothing was linked.`
    return <LinkPage title="Nothing was linked" notice={{ kind: 'error', text }} />
  }
  const text = 'There is nothing to show here.'
  return <LinkPage title="Linking" notice={{ kind: 'info', text }} />
}

/** A ticket (or anything else at `/link/<ticket>`) that could not start a flow. */
export function linkRefusedPage(error: TesseraError) {
  const text =
    errorMessage(error.code) ?? 'This link cannot be used. Ask the application for a new one.'
  return <LinkPage title={error.title} notice={{ kind: 'error', text }} />
}
