import type { EventSourceLike } from '../client/connection'

const CONNECTING = 0
const OPEN = 1
const CLOSED = 2

/** A listener as `EventSource` calls it. */
type MessageListener = (event: MessageEvent<string>) => void

/**
 * An `EventSource` over any `fetch`, for a fetch that never touches the network (the test rig's).
 * It does what Zuno's client needs of one and no more: it opens, reads `id`, `event` and `data`
 * lines, and on an HTTP error or the stream's end reports an error and stays closed. The client
 * reconnects by itself, with its own backoff and resume id, so this never retries.
 */
export class InProcessEventSource implements EventSourceLike {
  /** `readyState` before the stream opens, and after it broke or ended (the client then reconnects). */
  static readonly CONNECTING = CONNECTING
  /** `readyState` while the stream is open. */
  static readonly OPEN = OPEN
  /** `readyState` after `close()`, or after an HTTP error (a refused stream). */
  static readonly CLOSED = CLOSED

  readyState = CONNECTING
  onopen: ((event: Event) => unknown) | null = null
  onerror: ((event: Event) => unknown) | null = null
  readonly #listeners = new Map<string, Set<MessageListener>>()
  readonly #abort = new AbortController()
  #lastEventId = ''

  constructor(
    /** The stream's URL, as the client built it (query included). */
    readonly url: string,
    /** What requests the stream: the test rig's in-process fetch. */
    fetchStream: typeof fetch,
  ) {
    void this.#run(fetchStream)
  }

  addEventListener(type: string, listener: MessageListener): void {
    let listeners = this.#listeners.get(type)
    if (listeners === undefined) this.#listeners.set(type, (listeners = new Set()))
    listeners.add(listener)
  }

  /** Stops calling `listener` for events of `type`. */
  removeEventListener(type: string, listener: MessageListener): void {
    this.#listeners.get(type)?.delete(listener)
  }

  close(): void {
    this.readyState = CLOSED
    this.#abort.abort()
  }

  async #run(fetchStream: typeof fetch): Promise<void> {
    let response: Response
    try {
      response = await fetchStream(this.url, { headers: { accept: 'text/event-stream' }, signal: this.#abort.signal })
    } catch {
      return this.#fail(false, undefined)
    }
    if (this.readyState === CLOSED) return void response.body?.cancel()
    if (!response.ok || !response.headers.get('content-type')?.startsWith('text/event-stream') || response.body === null) {
      void response.body?.cancel()
      // As the `eventsource` package does: the status travels as `code`, so the client need not ask again.
      return this.#fail(true, response.status)
    }
    this.readyState = OPEN
    this.onopen?.(new Event('open'))
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    let buffered = ''
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done || this.readyState === CLOSED) break
        buffered += value
        let end = buffered.indexOf('\n\n')
        while (end >= 0) {
          this.#dispatch(buffered.slice(0, end))
          buffered = buffered.slice(end + 2)
          end = buffered.indexOf('\n\n')
        }
      }
    } catch {
      // Aborted by close(), or the stream broke: the same as its end.
    }
    this.#fail(false, undefined)
  }

  /** One frame: its lines, comments (`:`) and `retry:` ignored, as the client sets its own pauses. */
  #dispatch(frame: string): void {
    let type = 'message'
    const data: string[] = []
    for (const line of frame.split('\n')) {
      const colon = line.indexOf(':')
      if (colon === 0) continue
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(line[colon + 1] === ' ' ? colon + 2 : colon + 1)
      if (field === 'event') type = value
      else if (field === 'data') data.push(value)
      else if (field === 'id') this.#lastEventId = value
    }
    if (data.length === 0) return
    const event = { type, data: data.join('\n'), lastEventId: this.#lastEventId } as MessageEvent<string>
    for (const listener of this.#listeners.get(type) ?? []) listener(event)
  }

  /**
   * Reports the stream as failed: `answered` (an HTTP error, which a real EventSource never
   * retries) leaves it CLOSED, a broken or ended stream CONNECTING, which tells the client to
   * reconnect. Not after `close()`: the client expects nothing more then.
   */
  #fail(answered: boolean, status: number | undefined): void {
    if (this.#abort.signal.aborted) return
    this.readyState = answered ? CLOSED : CONNECTING
    this.#abort.abort()
    this.onerror?.(Object.assign(new Event('error'), status === undefined ? {} : { code: status }))
  }

}
