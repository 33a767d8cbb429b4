/** The verifier's Server-Sent Events parser (WHATWG HTML, "Parsing an event stream"). */
import { describe, expect, it } from 'vitest'
import { createSseParser } from '../../src/verify/sse.js'

const parse = (chunks: string[]) => {
  const parser = createSseParser(1000)
  return chunks.flatMap((chunk) => parser.push(chunk))
}

describe('createSseParser', () => {
  it('reads events, their ids and multi-line data; skips comments and retry', () => {
    expect(
      parse(['retry: 1000\n\n: heartbeat\n\nevent: revocations\nid: 7\ndata: a\ndata:b\n\n']),
    ).toEqual([{ event: 'revocations', data: 'a\nb', lastEventId: '7' }])
  })

  it('takes CRLF, CR and LF line ends, split anywhere between chunks, and a leading BOM', () => {
    const text = '\uFEFFevent: x\r\ndata: one\r\rdata: two\n\nid: 3\r\ndata: three\r\n\r\n'
    const whole = parse([text])
    expect(whole).toEqual([
      { event: 'x', data: 'one', lastEventId: undefined },
      { event: 'message', data: 'two', lastEventId: undefined },
      { event: 'message', data: 'three', lastEventId: '3' },
    ])
    for (let cut = 1; cut < text.length; cut++) {
      expect(parse([text.slice(0, cut), text.slice(cut)]), `cut at ${cut}`).toEqual(whole)
    }
    expect(parse([...text])).toEqual(whole)
  })

  it('dispatches nothing without data, and refuses an endless line', () => {
    expect(parse(['event: empty\n\n', 'id: 1\n\n'])).toEqual([])
    const parser = createSseParser(10)
    expect(() => parser.push('data: far more than ten characters')).toThrow(/over 10/)
  })
})
