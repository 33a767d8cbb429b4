/**
 * A Server-Sent Events parser (WHATWG HTML, "Parsing an event stream"), enough for Tessera's
 * revocation stream: `event`, `data` (lines joined with LF), `id`, comments (heartbeats); `retry`
 * is ignored (the feed client keeps its own backoff). Lines end with CRLF, LF or CR; a leading
 * byte-order mark is dropped. Small enough to keep `tessera/verify` free of dependencies.
 */

export interface ServerSentEvent {
  /** `message` when the event names none. */
  event: string
  data: string
  /** The last `id` field seen so far in the stream, if any. */
  lastEventId: string | undefined
}

export interface SseParser {
  /**
   * Feeds decoded text; returns the events it completed. Throws when a line grows beyond
   * `maxLineChars` (a stream that is not SSE, or hostile).
   */
  push(text: string): ServerSentEvent[]
}

export function createSseParser(maxLineChars: number): SseParser {
  let buffer = ''
  let started = false
  let pendingCr = false
  let event = ''
  let data: string[] = []
  let lastEventId: string | undefined

  function line(text: string, out: ServerSentEvent[]): void {
    if (text === '') {
      if (data.length > 0)
        out.push({ event: event || 'message', data: data.join('\n'), lastEventId })
      event = ''
      data = []
      return
    }
    if (text.startsWith(':')) return
    const colon = text.indexOf(':')
    const field = colon === -1 ? text : text.slice(0, colon)
    let value = colon === -1 ? '' : text.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
    else if (field === 'id' && !value.includes('\u0000')) lastEventId = value
  }

  return {
    push(text) {
      if (!started && text.length > 0) {
        started = true
        if (text.startsWith('\uFEFF')) text = text.slice(1)
      }
      // A CR at the end of the last chunk may be the first half of a CRLF.
      if (pendingCr && text.startsWith('\n')) text = text.slice(1)
      pendingCr = false
      // What is left of the last chunk holds no line end: scan only the new text.
      let i = buffer.length
      buffer += text
      const out: ServerSentEvent[] = []
      let start = 0
      for (; i < buffer.length; i++) {
        const c = buffer.charCodeAt(i)
        if (c !== 0x0a && c !== 0x0d) continue
        line(buffer.slice(start, i), out)
        if (c === 0x0d) {
          if (i + 1 === buffer.length) pendingCr = true
          else if (buffer.charCodeAt(i + 1) === 0x0a) i++
        }
        start = i + 1
      }
      buffer = buffer.slice(start)
      if (buffer.length > maxLineChars) throw new Error(`event stream line over ${maxLineChars}`)
      return out
    },
  }
}
