import type { EventSourceLike } from '../../src/index'
import {
  type AuthoritativeUniverse,
  type CommittedEvent,
  createUniverse,
  type Storage,
  type Subscription,
  splitTarget,
  SyncServer,
  type ZunoRequest,
} from '../../src/server/index'
import type { VirtualClock } from './virtualClock'

/** How hostile the simulated network is. Probabilities per message; delays in virtual ms. */
export interface Faults {
  minDelayMs: number
  maxDelayMs: number
  /** A POST reaches the server, but its answer never reaches the client. */
  loseResponse: number
  /** A POST is delivered twice (the copy with its own delay, so it may overtake). */
  duplicateRequest: number
  /** An SSE stream breaks in the middle of a frame. */
  cutStream: number
}

export const CALM: Faults = { minDelayMs: 1, maxDelayMs: 5, loseResponse: 0, duplicateRequest: 0, cutStream: 0 }

/** One proposal as its client saw it: when it went out, and what (if anything) came back when. */
export interface Attempt {
  clientId: string
  storeKey: string
  opId: number
  baseVersion: number
  state: unknown
  invokedAt: number
  respondedAt?: number
  status?: number
  answer?: { version: number; state: unknown; duplicate?: true }
}

interface MessageEventLike {
  data: string
  lastEventId: string
}

const CONNECTING = 0
const OPEN = 1
const CLOSED = 2

/**
 * An in-process network between replicas and one authoritative universe: real client code, real
 * server code, and between them deliveries scheduled on a virtual clock, with faults injected from
 * a seeded PRNG. The server can be restarted on the same storage (as a durable store would survive).
 */
export class SimNetwork {
  faults: Faults
  /** Every committed event, across restarts, in log order. */
  readonly committed: CommittedEvent[] = []
  /** Every proposal attempt, in invocation order. */
  readonly attempts: Attempt[] = []
  /** How many faults were injected, by kind. */
  readonly injected = { lostAnswers: 0, duplicates: 0, cuts: 0, restarts: 0 }
  universe!: AuthoritativeUniverse
  #server: SyncServer | undefined
  readonly #streams = new Set<SimEventSource>()
  readonly #storage: Storage
  readonly #stores: Record<string, unknown>

  constructor(
    readonly clock: VirtualClock,
    readonly random: () => number,
    storage: Storage,
    stores: Record<string, unknown>,
    faults: Faults,
    /** Events the universe keeps for resumes. */
    readonly retention = 50,
  ) {
    this.#storage = storage
    this.#stores = stores
    this.faults = faults
    this.#boot()
  }

  /** Whether the server is up. */
  get up(): boolean {
    return this.#server !== undefined
  }

  /** Kills the server (every stream breaks, requests fail) and boots a new one after `downtimeMs`. */
  restart(downtimeMs: number): void {
    const server = this.#server
    if (server === undefined) return
    this.#server = undefined
    this.injected.restarts += 1
    for (const stream of [...this.#streams]) stream.fail(CONNECTING)
    server.close()
    void this.universe.close()
    this.clock.setTimeout(() => this.#boot(), downtimeMs)
  }

  /** A `fetch` for one client: POST /sync only, which is all a replica sends. */
  fetchFor(): typeof fetch {
    return (async (input: string | URL | Request, init?: RequestInit) => {
      const body = String(init?.body ?? '')
      const parsed = JSON.parse(body) as Omit<Attempt, 'invokedAt'>
      const attempt: Attempt = { ...parsed, invokedAt: this.clock.now }
      this.attempts.push(attempt)
      const target = new URL(String(input))
      const copies = this.random() < this.faults.duplicateRequest ? 2 : 1
      if (copies === 2) this.injected.duplicates += 1
      const answers = Array.from({ length: copies }, () => this.#deliverPost(target.pathname + target.search, body))
      const answer = await answers[0]
      for (const extra of answers.slice(1)) extra?.catch(() => {})
      // The server did the work; now the answer travels back, or is lost on the way.
      await this.#delay()
      if (answer === undefined || this.random() < this.faults.loseResponse) {
        if (answer !== undefined) this.injected.lostAnswers += 1
        throw new TypeError('simulated network failure')
      }
      attempt.respondedAt = this.clock.now
      attempt.status = answer.status
      if (process.env.ZUNO_SIM_DEBUG && answer.status !== 200 && !answer.body.includes('"conflict"')) console.log('ANSWER', attempt.clientId, attempt.opId, this.clock.now, answer.body)
      const json = JSON.parse(answer.body) as { version?: number; state?: unknown; duplicate?: true }
      if (json.version !== undefined) attempt.answer = { version: json.version, state: json.state, ...(json.duplicate ? { duplicate: true } : {}) }
      return { status: answer.status, headers: new Headers(), json: async () => JSON.parse(answer.body) } as Response
    }) as typeof fetch
  }

  /** An `EventSource` class for clients on this network. */
  get EventSource(): new (url: string) => EventSourceLike {
    const network = this
    return class extends SimEventSource {
      constructor(url: string) {
        super(network, url)
      }
    }
  }

  /** Internal: registers a stream and connects it after a delay. */
  connectStream(stream: SimEventSource): void {
    this.#streams.add(stream)
    this.clock.setTimeout(() => {
      if (stream.readyState === CLOSED) return
      const server = this.#server
      if (server === undefined) return stream.fail(CONNECTING)
      const { path, query } = splitTarget(stream.target)
      void server.handle(request('GET', path, query, '')).then((response) => {
        if (response.kind !== 'sse' || stream.readyState === CLOSED || this.#server !== server) {
          return stream.fail(CONNECTING)
        }
        stream.opened(
          response.open({
            write: (chunk) => {
              stream.receive(new TextDecoder().decode(chunk))
              return true
            },
            close: () => stream.fail(CONNECTING),
          }),
        )
      })
    }, this.#latency())
  }

  /** Internal: forgets a stream. */
  forget(stream: SimEventSource): void {
    this.#streams.delete(stream)
  }

  /** A delivery delay for one message. */
  latency(): number {
    return this.#latency()
  }

  #latency(): number {
    const { minDelayMs, maxDelayMs } = this.faults
    return minDelayMs + Math.floor(this.random() * (maxDelayMs - minDelayMs + 1))
  }

  #delay(): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, this.#latency()))
  }

  async #deliverPost(target: string, body: string): Promise<{ status: number; body: string } | undefined> {
    await this.#delay()
    const server = this.#server
    if (server === undefined) return undefined
    const { path, query } = splitTarget(target)
    const response = await server.handle(request('POST', path, query, body))
    return response.kind === 'json' ? { status: response.status, body: response.body } : undefined
  }

  #boot(): void {
    this.universe = createUniverse({ stores: this.#stores, storage: this.#storage, retention: this.retention })
    this.universe.onCommit((entry) => this.committed.push(entry.event))
    // Rate limits count real time, which a virtual run does not spend.
    this.#server = new SyncServer(this.universe, { heartbeatMs: 1e9, maxProposalsPerSecond: 1e9 })
  }
}

function request(method: string, path: string, query: URLSearchParams, body: string): ZunoRequest {
  return {
    method,
    path: path.replace(/^\/zuno/, ''),
    query,
    header: (name) => (name === 'content-type' ? 'application/json' : undefined),
    readBody: async () => body,
  }
}

/** A stream on the simulated network, behaving as an `EventSource` does towards its listeners. */
export class SimEventSource implements EventSourceLike {
  readyState = CONNECTING
  onopen: ((event: Event) => unknown) | null = null
  onerror: ((event: Event) => unknown) | null = null
  readonly #listeners = new Map<string, Array<(event: MessageEvent<string>) => void>>()
  #subscription: Subscription | undefined
  /** Frames are delivered in order: each no earlier than the one before. */
  #lastDelivery = 0
  #buffer = ''

  constructor(
    readonly network: SimNetwork,
    readonly target: string,
  ) {
    network.connectStream(this)
  }

  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void {
    const list = this.#listeners.get(type) ?? []
    list.push(listener)
    this.#listeners.set(type, list)
  }

  close(): void {
    this.readyState = CLOSED
    this.#subscription?.close()
    this.#subscription = undefined
    this.network.forget(this)
  }

  /** Internal: the server accepted the stream. */
  opened(subscription: Subscription): void {
    this.#subscription = subscription
    this.readyState = OPEN
    this.#schedule(() => this.onopen?.({} as Event))
  }

  /** Internal: bytes from the server. */
  receive(text: string): void {
    this.#buffer += text
    let end = this.#buffer.indexOf('\n\n')
    while (end !== -1) {
      const block = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end + 2)
      end = this.#buffer.indexOf('\n\n')
      if (this.network.random() < this.network.faults.cutStream) {
        // The connection breaks with this frame half-sent: the client never sees it.
        this.network.injected.cuts += 1
        this.#schedule(() => this.fail(CONNECTING))
        this.#subscription?.close()
        this.#subscription = undefined
        return
      }
      const frame = parseBlock(block)
      if (frame.data !== undefined) this.#schedule(() => this.#dispatch(frame.event ?? 'message', frame))
    }
  }

  /** Internal: the connection broke (a real EventSource would then try again by itself). */
  fail(readyState: number): void {
    if (this.readyState === CLOSED) return
    this.#subscription?.close()
    this.#subscription = undefined
    this.readyState = readyState
    this.onerror?.({} as Event)
  }

  #dispatch(type: string, frame: { data?: string; id?: string }): void {
    if (this.readyState !== OPEN) return
    const event: MessageEventLike = { data: frame.data ?? '', lastEventId: frame.id ?? '' }
    for (const listener of this.#listeners.get(type) ?? []) listener(event as MessageEvent<string>)
  }

  #schedule(run: () => void): void {
    const at = Math.max(this.network.clock.now + this.network.latency(), this.#lastDelivery)
    this.#lastDelivery = at
    this.network.clock.setTimeout(run, at - this.network.clock.now)
  }
}

function parseBlock(block: string): { id?: string; event?: string; data?: string } {
  const frame: { id?: string; event?: string; data?: string } = {}
  for (const line of block.split('\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const field = line.slice(0, colon)
    const value = line.slice(colon + 1).replace(/^ /, '')
    if (field === 'id' || field === 'event' || field === 'data') frame[field] = value
  }
  return frame
}
