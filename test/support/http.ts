export type RequestInitWithJson = RequestInit & { json?: unknown; token?: string }

/**
 * fetch against one base URL: a `json` body is serialised (POST unless a method is given) and
 * `token` becomes a bearer Authorization header.
 */
export function requestTo(baseUrl: string) {
  return (path: string, init: RequestInitWithJson = {}): Promise<Response> => {
    const { json, token, ...rest } = init
    const headers = new Headers(rest.headers)
    if (json !== undefined) headers.set('content-type', 'application/json')
    if (token !== undefined) headers.set('authorization', `Bearer ${token}`)
    return fetch(baseUrl + path, {
      ...rest,
      headers,
      ...(json === undefined ? {} : { body: JSON.stringify(json), method: rest.method ?? 'POST' }),
    })
  }
}
