/** One parsed SSE block: an event, a retry hint or a comment. */
export interface SseFrame {
  id?: string
  event?: string
  data?: string
  retry?: number
  comment?: string
}

/** A raw SSE stream read with `fetch`, frame by frame, so tests see exactly what went on the wire. */
export interface RawStream {
  response: Response
  /** The next frame; rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<SseFrame>
  /** The next frame that is an event (skips comments and bare retry hints). */
  nextEvent(timeoutMs?: number): Promise<SseFrame>
  /** Collects events until none arrives for `quietMs`. */
  drainEvents(quietMs?: number): Promise<SseFrame[]>
  close(): void
}

/** The JSON in a frame's `data`, so a test can compare what an event carried. */
export const dataOf = (frame: SseFrame) => JSON.parse(frame.data as string) as Record<string, unknown>

export async function openRawStream(url: string, headers: Record<string, string> = {}): Promise<RawStream> {
  const controller = new AbortController()
  const response = await fetch(url, { headers, signal: controller.signal })
  const frames: SseFrame[] = []
  const waiters: Array<(frame: SseFrame | Error) => void> = []
  let ended: Error | undefined

  const deliver = (frame: SseFrame | Error) => {
    const waiter = waiters.shift()
    if (waiter) waiter(frame)
    else if (!(frame instanceof Error)) frames.push(frame)
  }

  if (response.body !== null && response.headers.get('content-type')?.startsWith('text/event-stream')) {
    void (async () => {
      const decoder = new TextDecoder()
      let buffer = ''
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true })
          let end = buffer.indexOf('\n\n')
          while (end !== -1) {
            deliver(parseBlock(buffer.slice(0, end)))
            buffer = buffer.slice(end + 2)
            end = buffer.indexOf('\n\n')
          }
        }
        ended = new Error('stream ended')
      } catch (error) {
        ended = error instanceof Error ? error : new Error(String(error))
      }
      for (const waiter of waiters.splice(0)) waiter(ended)
    })()
  }

  const next = (timeoutMs = 5000) =>
    new Promise<SseFrame>((resolve, reject) => {
      const frame = frames.shift()
      if (frame) return resolve(frame)
      if (ended) return reject(ended)
      const timer = setTimeout(() => {
        const index = waiters.indexOf(waiter)
        if (index !== -1) waiters.splice(index, 1)
        reject(new Error(`no SSE frame within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter = (value: SseFrame | Error) => {
        clearTimeout(timer)
        if (value instanceof Error) reject(value)
        else resolve(value)
      }
      waiters.push(waiter)
    })

  const nextEvent = async (timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const frame = await next(Math.max(1, deadline - Date.now()))
      if (frame.data !== undefined) return frame
    }
  }

  const drainEvents = async (quietMs = 300) => {
    const events: SseFrame[] = []
    for (;;) {
      try {
        events.push(await nextEvent(quietMs))
      } catch {
        return events
      }
    }
  }

  return { response, next, nextEvent, drainEvents, close: () => controller.abort() }
}

function parseBlock(block: string): SseFrame {
  const frame: SseFrame = {}
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) frame.comment = line.slice(1).trim()
    else {
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'id') frame.id = value
      else if (field === 'event') frame.event = value
      else if (field === 'data') frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`
      else if (field === 'retry') frame.retry = Number(value)
    }
  }
  return frame
}
