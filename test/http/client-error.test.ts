/**
 * Requests node:http itself refuses, before the app sees them: headers over its limit (431) and
 * requests it cannot parse (400). They get a problem document with a stable code like every other
 * error, over a raw socket (fetch would refuse to send them).
 */
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestApp, type TestApp } from '../support/app.js'
import { dialects } from '../support/dialects.js'

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** Writes `request` as it is and reads until the server closes the connection. */
function rawRequest(url: string, request: string): Promise<RawResponse> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (received += chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const [head = '', body = ''] = received.split('\r\n\r\n', 2)
      const [statusLine = '', ...lines] = head.split('\r\n')
      const headers = Object.fromEntries(
        lines.map((line) => [
          line.slice(0, line.indexOf(':')).toLowerCase(),
          line.slice(line.indexOf(':') + 1).trim(),
        ]),
      )
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body })
    })
    socket.write(request)
  })
}

for (const dialect of dialects()) {
  describe(`requests node:http refuses [${dialect}]`, () => {
    let app: TestApp
    beforeAll(async () => {
      app = await makeTestApp({ dialect })
    })
    afterAll(() => app?.close())

    function expectProblem(res: RawResponse, status: number, code: string) {
      expect(res.status).toBe(status)
      expect(res.headers['content-type']).toBe('application/problem+json')
      expect(res.headers.connection).toBe('close')
      expect(res.headers['cache-control']).toBe('no-store')
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body))
      expect(JSON.parse(res.body)).toMatchObject({
        type: `urn:tessera:problem:${code}`,
        status,
        code,
      })
    }

    it('headers over the limit', async () => {
      // 431 headers_too_large problem+json, connection closed.
      const res = await rawRequest(
        app.url,
        `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
      )
      expectProblem(res, 431, 'headers_too_large')
    })

    it('a malformed request line', async () => {
      // 400 validation_failed problem+json, connection closed.
      expectProblem(await rawRequest(app.url, 'THIS IS NOT HTTP\r\n\r\n'), 400, 'validation_failed')
    })

    it('a malformed header: 400 validation_failed problem+json', async () => {
      expectProblem(
        await rawRequest(
          app.url,
          'GET /health HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n',
        ),
        400,
        'validation_failed',
      )
    })

    it('the server goes on serving', async () => {
      expect((await app.request('/health')).status).toBe(200)
    })
  })
}
