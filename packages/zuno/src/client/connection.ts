import { ZunoError } from '../errors'
import { type CommitEvent, type HelloMessage, PATHS, type PresenceMessage, PROTOCOL_VERSION, type RevokedMessage, SSE_EVENTS, type SnapshotMessage, type StateEvent } from '../protocol'
import { refusesCredentials, streamRefusal } from './answers'
import { backoffDelay } from './backoff'
import type { StreamStores } from './follows'


/** How long reading why a stream was refused may take before it counts as a network failure, ms. */
const REFUSAL_READ_MS = 10_000
/**
 * Connection state of a replica, for status indicators:
 * - `connecting`, `connected`;
 * - `offline`: the stream was lost (the network, a restart); it reconnects with backoff;
 * - `error`: the server (or a proxy) answered the stream with an error; it reconnects with backoff;
 * - `unauthorized` / `forbidden`: the server refused the credentials (401 / 403). Nothing is retried
 *   until the `token` option gives another token or the app calls `retry()`;
 * - `closed`: `close()` was called.
 */
export type ConnectionStatus = 'connecting' | 'connected' | 'offline' | 'error' | 'unauthorized' | 'forbidden' | 'closed'

/** The part of the `EventSource` interface the client uses (the browser's, or the `eventsource` package's). */
export interface EventSourceLike {
  /** `CLOSED` (2) after an error tells a refused stream from one the source will retry itself. */
  readonly readyState: number
  /** Set by Zuno: the stream is up, so the status turns `connected`. */
  onopen: ((event: Event) => unknown) | null
  /** Set by Zuno: the stream dropped or was refused. */
  onerror: ((event: Event) => unknown) | null
  /** Zuno listens by event name ({@link SSE_EVENTS}), not on `onmessage`. */
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void
  /** Ends the stream; Zuno then opens its own next one, on its own schedule. */
  close(): void
}

/** A constructor of {@link EventSourceLike}. */
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike

/** The timer functions the client uses; injectable for deterministic tests. */
export interface Timers {
  /** Schedules a retry or a reconnect; the handle is only ever passed back to `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown
  /** Cancels a pending `setTimeout`. */
  clearTimeout(handle: unknown): void
}

/** What the stream reports to its replica. */
export interface StreamHandlers {
  snapshot(message: SnapshotMessage, eventId: string): void
  /** The stream's id, for `POST /subscribe`. */
  hello(message: HelloMessage): void
  /** Stores the stream follows from now on, as of `eventId`. */
  followed(message: SnapshotMessage, eventId: string): void
  /** Stores the stream no longer carries: the principal may no longer read them. */
  revoked(message: RevokedMessage): void
  /** Who is in a room, and what they broadcast. */
  presence(message: PresenceMessage): void
  /** A resumed stream has replayed what was missed. */
  resumed(): void
  state(event: StateEvent, eventId: string): void
  /** One change of several stores (an action's), to apply as one. */
  commit(event: CommitEvent, eventId: string): void
  status(status: ConnectionStatus): void
  /** The stream was answered with an HTTP error; with `unauthenticated` or `forbidden` it stopped until {@link StreamConnection.retry}. */
  refused(error: ZunoError): void
}

/** Options of {@link StreamConnection}. */
export interface StreamOptions {
  /** Base URL of the mount, without a trailing slash. */
  url: string
  /** The stores to name as a stream opens (`undefined`: every store), read at each connection. */
  stores(): StreamStores | undefined
  EventSource: EventSourceConstructor
  /** Reads the status of a refused stream where the `EventSource` does not tell it (browsers never do). */
  fetch: typeof fetch
  withCredentials: boolean
  timers: Timers
  random: () => number
  /** Whether ops are waiting for the stream: reconnect pauses are then capped at one second, not ten. */
  hurry(): boolean
  /** The id to resume from when (re)connecting; `undefined` asks for a snapshot. */
  resumeFrom(): string | undefined
  /** A short-lived token for the server's `authenticate`, sent as `?token=` (EventSource cannot send headers). */
  token: (() => string | undefined) | undefined
}

const RECONNECT_BASE_MS = 250
const RECONNECT_CAP_MS = 10_000
/** The cap while ops wait: someone is waiting for them, and one replica's reconnects are cheap. */
const HURRIED_RECONNECT_CAP_MS = 1_000
/** `EventSource.CLOSED`: the source will not reconnect by itself (an HTTP error, say). */
const CLOSED = 2

/**
 * The downstream half of a replica: one SSE stream that it reconnects by itself, with jittered
 * backoff, always resuming from the last event the replica applied (the built-in reconnect of
 * `EventSource` would resume from the last event it *received*, which is not the same after a resync).
 */
export class StreamConnection {
  readonly #options: StreamOptions
  readonly #handlers: StreamHandlers
  #source: EventSourceLike | undefined
  #retryTimer: unknown
  #failures = 0
  #forceSnapshot = false
  #closed = false
  /** The reconnect pause under way was taken while no op waited, so it may be a long one (up to 10 s). */
  #longPause = false

  constructor(options: StreamOptions, handlers: StreamHandlers) {
    this.#options = options
    this.#handlers = handlers
    this.#open()
  }

  /** Drops the stream and opens a new one that starts with a snapshot. */
  resync(): void {
    if (this.#closed) return
    this.#forceSnapshot = true
    this.#drop()
    this.#open()
  }

  /** Drops the stream and opens a new one at once, resuming from the last event applied. */
  reconnect(): void {
    if (this.#closed) return
    this.#drop()
    this.#open()
  }

  /**
   * Connects now, unless a stream is open or opening: after new credentials, or when the app knows
   * the network is back. Cuts a reconnect backoff short.
   */
  retry(): void {
    if (this.#closed || this.#source !== undefined) return
    this.#drop()
    this.#open()
  }

  /**
   * An op now waits: a pause taken while none did is cut short. A pause taken while ops waited is
   * kept (it is within the 1-second cap), so a burst of `set()` calls cannot make a reconnect each.
   */
  hurry(): void {
    if (this.#closed || this.#retryTimer === undefined || !this.#longPause) return
    this.#drop()
    this.#open()
  }

  /** Closes for good. */
  close(): void {
    this.#closed = true
    this.#drop()
  }

  #open(): void {
    this.#retryTimer = undefined
    if (this.#closed) return
    const resumeFrom = this.#forceSnapshot ? undefined : this.#options.resumeFrom()
    this.#forceSnapshot = false
    const url = this.#streamUrl(resumeFrom)
    const source = new this.#options.EventSource(url, {
      withCredentials: this.#options.withCredentials,
    })
    this.#source = source
    this.#handlers.status('connecting')
    source.onopen = () => {
      this.#failures = 0
      this.#handlers.status('connected')
    }
    source.onerror = (event) => {
      if (source !== this.#source) return
      // CLOSED: answered with an HTTP error (or not an event stream), which EventSource never retries.
      const answered = source.readyState === CLOSED
      this.#drop()
      this.#failures += 1
      if (!answered) {
        this.#handlers.status('offline')
        this.#reconnectLater()
        return
      }
      void this.#readRefusal(event, url).then((error) => {
        // Something else (retry, resync, close) took over while the answer was read.
        if (this.#closed || this.#source !== undefined || this.#retryTimer !== undefined) return
        this.#handlers.refused(error)
        if (refusesCredentials(error)) {
          // Retrying cannot help until the credentials change: stop (see retry()).
          this.#handlers.status(error.code === 'unauthenticated' ? 'unauthorized' : 'forbidden')
          return
        }
        this.#handlers.status('error')
        // A server that said when to come back (a 503 turning a crowd away) is not asked sooner.
        this.#reconnectLater((error.retryAfter ?? 0) * 1000)
      })
    }
    source.addEventListener(SSE_EVENTS.snapshot, (event) => {
      const message = parseData<SnapshotMessage>(event.data)
      if (source === this.#source && message?.stores) this.#handlers.snapshot(message, event.lastEventId)
    })
    source.addEventListener(SSE_EVENTS.hello, (event) => {
      const message = parseData<HelloMessage>(event.data)
      if (source === this.#source && typeof message?.streamId === 'string') this.#handlers.hello(message)
    })
    source.addEventListener(SSE_EVENTS.followed, (event) => {
      const message = parseData<SnapshotMessage>(event.data)
      if (source === this.#source && message?.stores) this.#handlers.followed(message, event.lastEventId)
    })
    source.addEventListener(SSE_EVENTS.revoked, (event) => {
      const message = parseData<RevokedMessage>(event.data)
      if (source === this.#source && Array.isArray(message?.stores)) this.#handlers.revoked(message)
    })
    source.addEventListener(SSE_EVENTS.presence, (event) => {
      const message = parseData<PresenceMessage>(event.data)
      if (source === this.#source && typeof message?.room === 'string') this.#handlers.presence(message)
    })
    source.addEventListener(SSE_EVENTS.resumed, () => {
      if (source === this.#source) this.#handlers.resumed()
    })
    source.addEventListener(SSE_EVENTS.resync, () => {
      // The server dropped us for falling behind: start over from a snapshot.
      if (source === this.#source) this.resync()
    })
    source.addEventListener(SSE_EVENTS.state, (event) => {
      const message = parseData<StateEvent>(event.data)
      if (source === this.#source && message?.storeKey) this.#handlers.state(message, event.lastEventId)
    })
    source.addEventListener(SSE_EVENTS.commit, (event) => {
      const message = parseData<CommitEvent>(event.data)
      if (source === this.#source && Array.isArray(message?.changes)) this.#handlers.commit(message, event.lastEventId)
    })
  }

  #reconnectLater(waitAtLeast = 0): void {
    const hurried = this.#options.hurry()
    this.#longPause = !hurried
    const cap = hurried ? HURRIED_RECONNECT_CAP_MS : RECONNECT_CAP_MS
    const delay = Math.max(waitAtLeast, backoffDelay(this.#failures, RECONNECT_BASE_MS, cap, this.#options.random))
    this.#retryTimer = this.#options.timers.setTimeout(() => this.#open(), delay)
  }

  /**
   * Why the stream was refused. The `eventsource` package tells the status (`code`); a browser's
   * EventSource tells nothing, so the same request is made once with `fetch` to read the answer.
   */
  async #readRefusal(event: Event, url: string): Promise<ZunoError> {
    const status = (event as { code?: unknown }).code
    if (typeof status === 'number' && status >= 300) return streamRefusal(status, undefined)
    const abort = new AbortController()
    // A read that never answers (a black-holed connection) must not leave the stream closed for good.
    const timer = this.#options.timers.setTimeout(() => abort.abort(), REFUSAL_READ_MS)
    try {
      const response = await this.#options.fetch(url, {
        headers: { accept: 'text/event-stream' },
        credentials: this.#options.withCredentials ? 'include' : 'same-origin',
        signal: abort.signal,
      })
      // Accepted this time (a passing failure, or an answer that is not an event stream): reconnect with backoff.
      if (response.ok) return streamRefusal(response.status, undefined)
      const retryAfter = Number(response.headers.get('retry-after')) || undefined
      return streamRefusal(response.status, await response.text(), retryAfter)
    } catch (cause) {
      return new ZunoError('network', 'Could not reach the server to read why the stream failed', { cause })
    } finally {
      this.#options.timers.clearTimeout(timer)
      abort.abort()
    }
  }

  #drop(): void {
    if (this.#retryTimer !== undefined) this.#options.timers.clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#source?.close()
    this.#source = undefined
  }

  #streamUrl(resumeFrom: string | undefined): string {
    const query = new URLSearchParams()
    query.set('v', String(PROTOCOL_VERSION))
    // This client reads patches: the server may send a change as one when it is shorter.
    query.set('patches', '1')
    // The stream's id (its `hello`), which `POST /subscribe` and `POST /presence` name.
    query.set('hello', '1')
    const named = this.#options.stores()
    if (named !== undefined) {
      query.set('stores', named.stores.join(','))
      if (named.follow.length > 0) query.set('follow', named.follow.join(','))
      query.set('versions', named.versions)
    }
    if (resumeFrom !== undefined) query.set('lastEventId', resumeFrom)
    const token = this.#options.token?.()
    if (token !== undefined) query.set('token', token)
    const search = query.toString()
    return `${this.#options.url}${PATHS.sse}${search ? `?${search}` : ''}`
  }
}

function parseData<T>(data: string): T | undefined {
  try {
    return JSON.parse(data) as T
  } catch {
    return undefined
  }
}
