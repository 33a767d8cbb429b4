import type { FC } from 'hono/jsx'
import { Layout, NoticeBox } from './layout.js'

export interface ErrorView {
  status: number
  code: string
  title: string
  text: string
  detail?: string | undefined
}

/** A refusal shown as a page: its fixed text and its stable code (the problem document's). */
export const ErrorPage: FC<ErrorView> = (view) => (
  <Layout title={view.title}>
    <h1>{view.title}</h1>
    <NoticeBox
      notice={{
        kind: 'error',
        text: view.text,
        ...(view.detail === undefined ? {} : { detail: view.detail }),
      }}
    />
    <p>
      Error code: <code>{view.code}</code> (HTTP {view.status})
    </p>
    <p>
      <a href="/account">Go to your account</a> or <a href="/login">sign in</a>.
    </p>
  </Layout>
)
