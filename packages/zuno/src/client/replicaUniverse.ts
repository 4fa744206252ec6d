import { isZunoError, ZunoError } from '../errors'
import { randomId } from '../id'
import { Observable } from '../observable'
import {
  type ErrorBody,
  parseEventId,
  PATHS,
  SSE_EVENTS,
  type SnapshotMessage,
  type StateEvent,
  type StoreState,
  type SyncAccepted,
  type SyncConflict,
} from '../protocol'
import { applyUpdater, type StoreCell, type Updater } from '../store'
import { Universe } from '../universe'

/** Connection state of a replica, for status indicators. */
export type ConnectionStatus = 'connecting' | 'connected' | 'offline' | 'error'

/** A value that can be read and watched. */
export interface ReadableValue<T> {
  get(): T
  subscribe(listener: (value: T) => void): () => void
}

/** The part of the `EventSource` interface the client uses (the browser's, or the `eventsource` package's). */
export interface EventSourceLike {
  readonly readyState: number
  onopen: ((event: Event) => unknown) | null
  onerror: ((event: Event) => unknown) | null
  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void
  close(): void
}

/** A constructor of {@link EventSourceLike}. */
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike

/** The timer functions the client uses; injectable for deterministic tests. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** Options of {@link connect}. */
export interface ReplicaOptions {
  /** Where the server mounted Zuno, such as `/zuno` or `http://127.0.0.1:3000/zuno`. */
  url: string
  /** Follow only these stores. Default: every store the server streams. */
  stores?: readonly string[]
  /** This replica's id. Default: a random one. */
  clientId?: string
  /** Resume the stream from this event id (such as the `cursor` of `GET /state`). */
  cursor?: string
  /** How many times an op is proposed before a conflict rejects it. Default 10. */
  maxAttempts?: number
  /** Default: the global `fetch`. */
  fetch?: typeof fetch
  /** Default: the global `EventSource` (on Node.js 20, pass the `eventsource` package's). */
  EventSource?: EventSourceConstructor
  /** Send cookies with cross-origin SSE requests. Default false. */
  withCredentials?: boolean
  /** Default: the global timers. */
  timers?: Timers
}

/** One `set` waiting to be accepted. */
interface PendingOp {
  readonly opId: number
  readonly update: Updater<unknown>
  readonly resolve: (version: number) => void
  readonly reject: (error: ZunoError) => void
  /** The state `update` was last applied to, and what it gave; re-run only when the input changes. */
  basedOn: unknown
  result: unknown
  hasResult: boolean
  /** The state of the proposal in flight. */
  sent: unknown
  /** Proposals answered 409 so far. */
  conflicts: number
  /** Failed deliveries (network, 5xx) in a row, for backoff. */
  failures: number
}

/** What the replica knows of one store. */
interface ReplicaStore {
  readonly cell: StoreCell<unknown>
  /** The latest authoritative version and state. */
  confirmed: StoreState
  /** Local ops not yet accepted, oldest first; the first is the one in flight. */
  readonly pending: PendingOp[]
  inFlight: boolean
}

const BACKOFF_BASE_MS = 25
const BACKOFF_CAP_MS = 5_000

/**
 * A replica universe: follows an authoritative server over SSE and proposes changes over HTTP.
 * `set` shows a change at once, then proposes it; a conflict adopts the server's state and
 * re-runs the pending updaters on it (rebase).
 */
export class ReplicaUniverse extends Universe {
  readonly role = 'replica' as const
  /** Identifies this replica's proposals. */
  readonly clientId: string
  readonly #status = new Observable<ConnectionStatus>('connecting')
  readonly #replicas = new Map<string, ReplicaStore>()
  readonly #url: string
  readonly #fetch: typeof fetch
  readonly #timers: Timers
  readonly #maxAttempts: number
  readonly #eventSource: EventSourceLike
  #opId = 0
  #epoch: string | undefined
  #lastEventId: string | undefined
  #closed = false

  constructor(options: ReplicaOptions) {
    super()
    this.#url = options.url.replace(/\/+$/, '')
    this.clientId = options.clientId ?? randomId()
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
    this.#timers = options.timers ?? {
      setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
      clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
    }
    this.#maxAttempts = options.maxAttempts ?? 10
    const EventSourceImpl = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource
    if (EventSourceImpl === undefined) {
      throw new TypeError('No EventSource here: pass one (on Node.js, the `eventsource` package) as options.EventSource')
    }
    if (options.cursor !== undefined) this.#noteEventId(options.cursor)
    this.#eventSource = new EventSourceImpl(this.#streamUrl(options.stores, options.cursor), {
      withCredentials: options.withCredentials ?? false,
    })
    this.#listen(this.#eventSource)
  }

  /** The connection status. */
  get status(): ReadableValue<ConnectionStatus> {
    return this.#status
  }

  /** The id of the last event applied: where a reconnect resumes. */
  get lastEventId(): string | undefined {
    return this.#lastEventId
  }

  /** Number of ops not yet accepted, over every store. */
  get pendingCount(): number {
    let count = 0
    for (const replica of this.#replicas.values()) count += replica.pending.length
    return count
  }

  /** Closes the stream; ops still pending reject with a `closed` error. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#eventSource.close()
    for (const replica of this.#replicas.values()) {
      for (const op of replica.pending.splice(0)) op.reject(new ZunoError('closed', 'The replica was closed'))
      this.#show(replica)
    }
    this.#status.set('error')
  }

  protected writeStore(cell: StoreCell<unknown>, next: Updater<unknown>): Promise<number> {
    if (this.#closed) return Promise.reject(new ZunoError('closed', 'The replica was closed'))
    const replica = this.#replica(cell.key)
    return new Promise<number>((resolve, reject) => {
      this.#opId += 1
      replica.pending.push({
        opId: this.#opId,
        update: next,
        resolve,
        reject,
        basedOn: undefined,
        result: undefined,
        hasResult: false,
        sent: undefined,
        conflicts: 0,
        failures: 0,
      })
      this.#show(replica)
      this.#pump(replica)
    })
  }

  #replica(key: string): ReplicaStore {
    let replica = this.#replicas.get(key)
    if (replica === undefined) {
      const cell = this.cell(key)
      replica = { cell, confirmed: { version: cell.version, state: cell.get() }, pending: [], inFlight: false }
      this.#replicas.set(key, replica)
    }
    return replica
  }

  /** Publishes the pending ops replayed over the confirmed state. Updaters re-run only on new input. */
  #show(replica: ReplicaStore): void {
    let state = replica.confirmed.state
    for (const op of replica.pending) {
      if (!op.hasResult || op.basedOn !== state) {
        op.basedOn = state
        op.result = applyUpdater(op.update, state)
        op.hasResult = true
      }
      state = op.result
    }
    replica.cell.publish(state, replica.confirmed.version)
  }

  /** Sends the oldest pending op unless one is already in flight: one proposal per store at a time. */
  #pump(replica: ReplicaStore): void {
    const op = replica.pending[0]
    if (op === undefined || replica.inFlight || this.#closed) return
    replica.inFlight = true
    op.sent = op.result
    void this.#propose(replica.cell.key, replica.confirmed.version, op.sent, op.opId).then(
      (answer) => {
        replica.inFlight = false
        this.#settle(replica, op, answer)
      },
      (error: unknown) => {
        replica.inFlight = false
        this.#retryLater(replica, op, error)
      },
    )
  }

  async #propose(storeKey: string, baseVersion: number, state: unknown, opId: number) {
    const response = await this.#fetch(`${this.#url}${PATHS.sync}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ storeKey, baseVersion, state, clientId: this.clientId, opId }),
    })
    if (response.status >= 500) throw new ZunoError('unavailable', `Server answered ${response.status}`)
    const body = (await response.json()) as SyncAccepted | SyncConflict | ErrorBody
    return { status: response.status, body }
  }

  #settle(replica: ReplicaStore, op: PendingOp, answer: { status: number; body: SyncAccepted | SyncConflict | ErrorBody }): void {
    if (replica.pending[0] !== op) {
      // Already settled by our own echo on the stream.
      this.#pump(replica)
      return
    }
    const { status, body } = answer
    if (status === 200 && body.ok) {
      // Only a 409 changes what is sent, and a 409 proves no earlier attempt was applied,
      // so the accepted state is the one sent last: keep that object for a stable identity.
      this.#confirm(replica, op, body.version)
    } else if (status === 409 && 'version' in body) {
      this.#adopt(replica, { version: body.version, state: body.state })
      op.conflicts += 1
      if (op.conflicts >= this.#maxAttempts) {
        this.#drop(replica, op, new ZunoError('conflict', `Gave up on ${replica.cell.key} after ${op.conflicts} conflicts`))
      } else {
        this.#show(replica)
        this.#later(replica, op.conflicts - 1)
      }
    } else {
      const error = body as ErrorBody
      this.#drop(replica, op, new ZunoError(error.error ?? 'protocol', error.message ?? `Server answered ${status}`))
    }
  }

  /** Network failures and 5xx: the op stays first in line and is sent again, same ids, after a pause. */
  #retryLater(replica: ReplicaStore, op: PendingOp, error: unknown): void {
    if (replica.pending[0] !== op) return this.#pump(replica)
    if (isZunoError(error) && error.code === 'closed') return
    op.failures += 1
    this.#later(replica, op.failures)
  }

  #later(replica: ReplicaStore, retry: number): void {
    if (retry <= 0) return this.#pump(replica)
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (retry - 1))
    const delay = ceiling / 2 + Math.random() * (ceiling / 2)
    replica.inFlight = true
    this.#timers.setTimeout(() => {
      replica.inFlight = false
      this.#pump(replica)
    }, delay)
  }

  #confirm(replica: ReplicaStore, op: PendingOp, version: number): void {
    replica.pending.shift()
    if (version > replica.confirmed.version) replica.confirmed = { version, state: op.sent }
    this.#show(replica)
    op.resolve(version)
    this.#pump(replica)
  }

  #drop(replica: ReplicaStore, op: PendingOp, error: ZunoError): void {
    replica.pending.shift()
    this.#show(replica)
    op.reject(error)
    this.#pump(replica)
  }

  /** Takes the server's state when it is newer than what we had. */
  #adopt(replica: ReplicaStore, incoming: StoreState): void {
    if (incoming.version > replica.confirmed.version) replica.confirmed = incoming
  }

  #listen(source: EventSourceLike): void {
    source.onopen = () => this.#status.set('connected')
    source.onerror = () => {
      if (this.#closed) return
      // 2 is EventSource.CLOSED: the source gave up and will not reconnect by itself.
      this.#status.set(source.readyState === 2 ? 'error' : 'offline')
    }
    source.addEventListener(SSE_EVENTS.snapshot, (event) => {
      const message = parseData<SnapshotMessage>(event.data)
      if (message === undefined) return
      const epochChanged = this.#noteEventId(event.lastEventId)
      for (const [key, incoming] of Object.entries(message.stores)) {
        const replica = this.#replica(key)
        // A snapshot is the truth as of its id; equal versions take the server's state too
        // (a store's initial state is the server's to declare), and a new epoch restarts versions.
        if (epochChanged || incoming.version >= replica.confirmed.version) replica.confirmed = incoming
        this.#show(replica)
      }
    })
    source.addEventListener(SSE_EVENTS.state, (event) => {
      const message = parseData<StateEvent>(event.data)
      if (message === undefined) return
      this.#noteEventId(event.lastEventId)
      this.#applyEvent(message)
    })
  }

  #applyEvent(event: StateEvent): void {
    const replica = this.#replica(event.storeKey)
    const head = replica.pending[0]
    if (head !== undefined && event.clientId === this.clientId && event.opId === head.opId) {
      // Our own op, seen on the stream before (or instead of) its HTTP answer.
      this.#confirm(replica, head, event.version)
      return
    }
    if (event.version <= replica.confirmed.version) return
    replica.confirmed = { version: event.version, state: event.state }
    this.#show(replica)
  }

  /** Records the id of an applied event; true when it belongs to a new epoch (a restarted server). */
  #noteEventId(id: string): boolean {
    if (!id) return false
    this.#lastEventId = id
    const epoch = parseEventId(id)?.epoch
    const changed = this.#epoch !== undefined && epoch !== this.#epoch
    this.#epoch = epoch
    return changed
  }

  #streamUrl(stores: readonly string[] | undefined, cursor: string | undefined): string {
    const query = new URLSearchParams()
    if (stores !== undefined) query.set('stores', stores.join(','))
    if (cursor !== undefined) query.set('lastEventId', cursor)
    const search = query.toString()
    return `${this.#url}${PATHS.sse}${search ? `?${search}` : ''}`
  }
}

function parseData<T>(data: string): T | undefined {
  try {
    return JSON.parse(data) as T
  } catch {
    return undefined
  }
}

/** Connects a replica universe to a Zuno server. */
export function connect(options: ReplicaOptions): ReplicaUniverse {
  return new ReplicaUniverse(options)
}
