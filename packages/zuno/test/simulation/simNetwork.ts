import type { EventSourceLike, IdPaths, Patch, ServerAction } from '../../src/index'
import {
  type AuthoritativeUniverse,
  type CommittedEvent,
  createUniverse,
  JSON_HEADERS,
  type Storage,
  type Subscription,
  splitTarget,
  SyncServer,
  type ZunoRequest,
} from '../../src/server/index'
import type { Schemas } from '../../src/schema'
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
  /** A proxy in front of the servers answers a POST with an HTML 502 or 504 page and never forwards it. */
  proxyFailsBefore: number
  /** A proxy forwards a POST, the server processes it, and the proxy replaces the answer with an HTML 502 or 504. */
  proxyFailsAfter: number
  /** A proxy refuses a POST as too large (HTML 413) and never forwards it. */
  proxyTooLarge: number
}

export const CALM: Faults = {
  minDelayMs: 1,
  maxDelayMs: 5,
  loseResponse: 0,
  duplicateRequest: 0,
  cutStream: 0,
  proxyFailsBefore: 0,
  proxyFailsAfter: 0,
  proxyTooLarge: 0,
}

/** Where a proxy's HTML answer came from, relative to the server. */
export type ProxyAnswer = 'before' | 'after' | 'too_large'

/** One proposal as its client saw it: when it went out, and what (if anything) came back when. */
export interface Attempt {
  clientId: string
  storeKey: string
  opId: number
  /** The epoch the proposal named. */
  epoch: string
  baseVersion: number
  state: unknown
  /** When the proposal went as a patch of the state at `baseVersion` (then it has no `state`). */
  patch?: Patch
  invokedAt: number
  respondedAt?: number
  status?: number
  answer?: { version: number; state: unknown; patches?: Patch[]; duplicate?: true; deleted?: true }
  /** The answer was a proxy's HTML page, not the server's. */
  proxy?: ProxyAnswer
}

interface MessageEventLike {
  data: string
  lastEventId: string
}

const PROXY_REASONS: Record<number, string> = { 413: 'Request Entity Too Large', 502: 'Bad Gateway', 504: 'Gateway Time-out' }

const CONNECTING = 0
const OPEN = 1
const CLOSED = 2

/** What the simulated servers run on. */
export interface SimServers {
  /** The storage the first boot uses; `restart({ fresh: true })` asks for a new one. */
  storage: () => Storage
  stores: Record<string, unknown>
  /** Stores clients may create. */
  allowStore?: (storeKey: string) => boolean
  /** The servers' schemas: they may transform what a client proposes. */
  schemas?: Schemas
  /** The servers' actions. */
  actions?: Record<string, ServerAction>
  /** Events each universe keeps for resumes. */
  retention: number
  /** Server instances sharing the storage; requests and streams go to any that is up. */
  instances: number
  /** Per store, the array paths whose items are identified by a key. */
  ids?: Record<string, IdPaths>
  /** Stores that merge disjoint patches proposed on a stale base. */
  merge?: readonly string[]
}

/** One server instance: a universe and its sync server, while it is up. */
interface Instance {
  universe: AuthoritativeUniverse
  server: SyncServer
}

/**
 * An in-process network between replicas and one or more authoritative instances sharing a
 * storage: real client code, real server code, and between them deliveries scheduled on a virtual
 * clock, with faults injected from a seeded PRNG. An instance can be restarted on the same storage
 * (as a durable store would survive), or every instance onto a fresh, empty one (a new epoch).
 */
export class SimNetwork {
  faults: Faults
  /** Every committed event, across restarts and epochs, in log order. */
  readonly committed: CommittedEvent[] = []
  /** Every proposal attempt, in invocation order. */
  readonly attempts: Attempt[] = []
  /** How many faults were injected, by kind. */
  readonly injected = {
    lostAnswers: 0,
    duplicates: 0,
    cuts: 0,
    restarts: 0,
    freshStorages: 0,
    /** HTML 502/504 from the proxy, the request never forwarded. */
    htmlBefore: 0,
    /** HTML 502/504 from the proxy in place of the server's answer: the op was processed. */
    htmlAfter: 0,
    /** HTML 413 from the proxy, the request never forwarded. */
    html413: 0,
  }
  /**
   * How much of the traffic went as deltas: proposals sent as patches, stream frames (`state` or
   * `commit`) that carried a patch, answers that carried `patches`, and merges (a 200 on a store
   * that merges, at a version past its proposal's base + 1).
   */
  readonly deltas = { patchProposals: 0, patchFrames: 0, patchAnswers: 0, merges: 0 }
  /** Error answers the clients received, by code: shows which paths a run went through. */
  readonly errors = new Map<string, number>()
  readonly #instances: Array<Instance | undefined>
  readonly #streams = new Map<SimEventSource, Instance>()
  #storage: Storage
  #stopRecording: () => void = () => {}

  constructor(
    readonly clock: VirtualClock,
    readonly random: () => number,
    readonly config: SimServers,
    faults: Faults,
  ) {
    this.faults = faults
    this.#storage = this.#record(config.storage())
    this.#instances = Array.from({ length: config.instances }, () => undefined)
    for (let i = 0; i < config.instances; i++) this.#boot(i)
  }

  /** The universe of the first instance that is up: the server's truth, for the checks. */
  get universe(): AuthoritativeUniverse {
    const up = this.#instances.find((instance) => instance !== undefined)
    if (up === undefined) throw new Error('no instance is up')
    return up.universe
  }

  /**
   * Kills an instance at random (its streams break, its requests fail) and boots it again after
   * `downtimeMs`; with `fresh`, kills every instance and boots them all on a new, empty storage.
   */
  restart(downtimeMs: number, { fresh = false } = {}): void {
    const victims = fresh ? this.#instances.map((_, i) => i) : [Math.floor(this.random() * this.#instances.length)]
    this.injected.restarts += 1
    if (fresh) {
      this.injected.freshStorages += 1
      this.#stopRecording()
      this.#storage = this.#record(this.config.storage())
    }
    for (const index of victims) {
      const instance = this.#instances[index]
      if (instance === undefined) continue
      this.#instances[index] = undefined
      for (const [stream, owner] of [...this.#streams]) if (owner === instance) stream.fail(CONNECTING)
      instance.server.close()
      void instance.universe.close()
      this.clock.setTimeout(() => this.#boot(index), downtimeMs)
    }
  }

  /**
   * A `fetch` for one client: POST /sync only, which is all a replica sends. Answers are real
   * `Response` objects with the server's headers (or, from the proxy, an HTML page), so the client
   * reads status, headers and body as it would from a browser's fetch.
   */
  fetchFor(): typeof fetch {
    return (async (input: string | URL | Request, init?: RequestInit) => {
      const body = String(init?.body ?? '')
      const parsed = JSON.parse(body) as Omit<Attempt, 'invokedAt'>
      const attempt: Attempt = { ...parsed, invokedAt: this.clock.now }
      this.attempts.push(attempt)
      if (attempt.patch !== undefined) this.deltas.patchProposals += 1
      const target = new URL(String(input))
      // The proxy may answer by itself, before anything reaches a server.
      const { proxyTooLarge, proxyFailsBefore, proxyFailsAfter } = this.faults
      const roll = this.random()
      if (roll < proxyTooLarge + proxyFailsBefore) {
        await this.#delay()
        const tooLarge = roll < proxyTooLarge
        if (tooLarge) this.injected.html413 += 1
        else this.injected.htmlBefore += 1
        return this.#proxyAnswer(attempt, tooLarge ? 413 : this.#gatewayStatus(), tooLarge ? 'too_large' : 'before')
      }
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
      if (this.random() < proxyFailsAfter) {
        // The proxy times out or drops the upstream connection after the server committed.
        this.injected.htmlAfter += 1
        return this.#proxyAnswer(attempt, this.#gatewayStatus(), 'after')
      }
      attempt.respondedAt = this.clock.now
      attempt.status = answer.status
      const json = JSON.parse(answer.body) as { version?: number; state?: unknown; patches?: Patch[]; duplicate?: true; deleted?: true; error?: string }
      if (json.error !== undefined) this.errors.set(json.error, (this.errors.get(json.error) ?? 0) + 1)
      if (json.patches !== undefined) this.deltas.patchAnswers += 1
      const merged = answer.status === 200 && json.version !== undefined && !json.duplicate && json.version > attempt.baseVersion + 1
      if (merged && this.config.merge?.includes(attempt.storeKey)) this.deltas.merges += 1
      if (json.version !== undefined) {
        attempt.answer = {
          version: json.version,
          state: json.state,
          ...(json.patches ? { patches: json.patches } : {}),
          ...(json.duplicate ? { duplicate: true } : {}),
          ...(json.deleted ? { deleted: true } : {}),
        }
      }
      return new Response(answer.body, { status: answer.status, headers: { ...JSON_HEADERS, ...answer.headers } })
    }) as typeof fetch
  }

  /** A 502 (bad gateway) or a 504 (gateway timeout), as a proxy says either. */
  #gatewayStatus(): number {
    return this.random() < 0.5 ? 502 : 504
  }

  /** The HTML page a proxy such as nginx sends for an error, recorded on the attempt. */
  #proxyAnswer(attempt: Attempt, status: number, proxy: ProxyAnswer): Response {
    attempt.respondedAt = this.clock.now
    attempt.status = status
    attempt.proxy = proxy
    const page = `<html>\r\n<head><title>${status} ${PROXY_REASONS[status]}</title></head>\r\n<body>\r\n<center><h1>${status} ${PROXY_REASONS[status]}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`
    return new Response(page, { status, headers: { 'content-type': 'text/html', server: 'nginx' } })
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

  /** Internal: connects a stream to an instance that is up, after a delay. */
  connectStream(stream: SimEventSource): void {
    this.clock.setTimeout(() => {
      if (stream.readyState === CLOSED) return
      const instance = this.#pick()
      if (instance === undefined) return stream.fail(CONNECTING)
      this.#streams.set(stream, instance)
      const { path, query } = splitTarget(stream.target)
      void instance.server.handle(request('GET', path, query, '')).then((response) => {
        if (response.kind !== 'sse' || stream.readyState === CLOSED || !this.#instances.includes(instance)) {
          return stream.fail(CONNECTING)
        }
        // An EventSource fires `open` on the response's headers, before any frame of its body.
        stream.accepted()
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

  /** An instance that is up, at random (a load balancer without stickiness). */
  #pick(): Instance | undefined {
    const up = this.#instances.filter((instance): instance is Instance => instance !== undefined)
    return up[Math.floor(this.random() * up.length)]
  }

  async #deliverPost(target: string, body: string): Promise<{ status: number; body: string; headers?: Record<string, string> } | undefined> {
    await this.#delay()
    const instance = this.#pick()
    if (instance === undefined) return undefined
    const { path, query } = splitTarget(target)
    const response = await instance.server.handle(request('POST', path, query, body))
    return response.kind === 'json' ? response : undefined
  }

  /** Records every event the storage commits, once, whichever instance committed it. */
  #record(storage: Storage): Storage {
    this.#stopRecording = storage.onCommit((event) => this.committed.push(event))
    return storage
  }

  #boot(index: number): void {
    const { stores, allowStore, retention, schemas, actions, ids, merge } = this.config
    const universe = createUniverse({
      stores,
      storage: this.#storage,
      retention,
      ...(ids ? { ids } : {}),
      ...(merge ? { merge } : {}),
      ...(allowStore ? { allowStore } : {}),
      ...(schemas ? { schemas } : {}),
      ...(actions ? { actions } : {}),
    })
    // Rate limits count real time, which a virtual run does not spend.
    this.#instances[index] = { universe, server: new SyncServer(universe, { heartbeatMs: 1e9, maxProposalsPerSecond: 1e9 }) }
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

  /** Internal: the server answered with a stream: `open` is due before the frames it writes. */
  accepted(): void {
    this.readyState = OPEN
    // A source closed (or broken) in the meantime says nothing more, as a browser's does not.
    this.#schedule(() => {
      if (this.readyState === OPEN) this.onopen?.({} as Event)
    })
  }

  /** Internal: the server's subscription, once it wrote what it writes first. */
  opened(subscription: Subscription): void {
    if (this.readyState !== OPEN) {
      // Cut while the first frames were written: the server must not keep writing to it.
      subscription.close()
      return
    }
    this.#subscription = subscription
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
      // A change's patch is the only `"patch":` key a frame can hold (no store's state has one).
      if ((frame.event === 'state' || frame.event === 'commit') && frame.data?.includes('"patch":')) this.network.deltas.patchFrames += 1
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
