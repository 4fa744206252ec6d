import type { LogEntry } from './log'
import type { ReadRights } from './readRights'
import { encodeCommitFrame } from './sse'
import type { CommittedChange } from './storage'

/** Where a subscriber's bytes go; an adapter wraps its transport in one. */
export interface SseSink {
  /** Writes a chunk; `false` means the transport's buffer is full until it reports a drain. */
  write(chunk: Uint8Array): boolean
  /** Ends the stream (the client reconnects and resumes). */
  close(): void
}

/** An open SSE stream, as its adapter sees it. */
export interface Subscription {
  /** The adapter calls this when the transport has drained its buffer. */
  drained(): void
  /** The adapter calls this when the connection has closed; idempotent. */
  close(): void
}

/** Options of {@link Hub}. */
export interface HubOptions {
  /** Interval of heartbeat comments, ms. */
  heartbeatMs: number
  /** Bytes queued for a congested subscriber before it is dropped (it then resumes by id). */
  maxQueuedBytes: number
}

/** Who opened a stream, as the hub keeps it: what `POST /subscribe` and a revalidation look it up by. */
export interface StreamOwner {
  /** The stream's id, as its `hello` event gave it. */
  readonly streamId: string
  /** The principal's id (`''` when anonymous). */
  readonly principalId: string
  /** The principal object the stream was opened with: rules are asked again with it. */
  readonly principal: unknown
}

/** An open stream, as the hub's owner sees it to follow, unfollow and revoke stores. */
export interface Stream extends StreamOwner {
  /** The stores it follows; `undefined` for a stream of every store it may read. */
  readonly storeKeys: ReadonlySet<string> | undefined
  /** For a stream of every store: which ones it may read (`undefined`: all). */
  readonly readable: ReadRights | undefined
  /** Whether its client reads patches. */
  readonly patches: boolean
  /** Queues a frame (a `followed` or `revoked` event) on the stream. */
  send(frame: Uint8Array): void
  /** Ends the stream (its client connects again, naming what it follows). */
  drop(): void
}

class Subscriber implements Subscription, Stream {
  /** Frames waiting while the transport is congested; `undefined` while it is not. */
  queue: Uint8Array[] | undefined
  queuedBytes = 0
  closed = false
  readonly streamId: string
  readonly principalId: string
  readonly principal: unknown

  constructor(
    readonly hub: Hub,
    readonly sink: SseSink,
    readonly storeKeys: Set<string> | undefined,
    /** For a subscriber to every store: which ones it may read (`undefined`: all). */
    readonly readable: ReadRights | undefined,
    /** Whether its client reads patches (`?patches=1`); otherwise every change goes whole. */
    readonly patches: boolean,
    owner: StreamOwner,
  ) {
    this.streamId = owner.streamId
    this.principalId = owner.principalId
    this.principal = owner.principal
  }

  /** The frame of `entry` this subscriber reads. */
  frameOf(entry: LogEntry): Uint8Array {
    return this.patches ? entry.frame : entry.wholeFrame
  }

  send(frame: Uint8Array): void {
    if (this.queue !== undefined) {
      this.queue.push(frame)
      this.queuedBytes += frame.byteLength
      if (this.queuedBytes > this.hub.options.maxQueuedBytes) this.drop(true)
      return
    }
    if (!this.sink.write(frame)) this.queue = []
  }

  drained(): void {
    const queue = this.queue
    if (queue === undefined || this.closed) return
    this.queue = undefined
    this.queuedBytes = 0
    for (let i = 0; i < queue.length; i++) {
      if (!this.sink.write(queue[i] as Uint8Array)) {
        this.queue = queue.slice(i + 1)
        for (const frame of this.queue) this.queuedBytes += frame.byteLength
        return
      }
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.queue = undefined
    this.hub.remove(this)
  }

  /** Ends the stream; `resync` first tells the client it fell behind and needs a snapshot. */
  drop(resync = false): void {
    this.close()
    if (resync) this.sink.write(this.hub.resyncFrame)
    this.sink.close()
  }
}

/**
 * SSE fan-out. Each frame is encoded once by the caller and the same bytes go to every
 * subscriber; subscribers are indexed by store so a change touches only those who want it.
 */
export class Hub {
  readonly #subscribers = new Set<Subscriber>()
  /** Every subscriber by stream id, for `POST /subscribe`. */
  readonly #byId = new Map<string, Subscriber>()
  /** Subscribers by principal id, for revalidation. */
  readonly #byPrincipal = new Map<string, Set<Subscriber>>()
  /** Subscribers to every store. */
  readonly #everything = new Set<Subscriber>()
  /** Subscribers to a few stores, by store key. */
  readonly #byStore = new Map<string, Set<Subscriber>>()
  #heartbeat: ReturnType<typeof setInterval> | undefined
  /** Called with each stream once it has closed (its presence then waits for another stream, or leaves). */
  onRemoved: ((stream: Stream) => void) | undefined

  constructor(
    readonly options: HubOptions,
    readonly heartbeatFrame: Uint8Array,
    readonly resyncFrame: Uint8Array,
  ) {}

  /** Number of open subscriptions. */
  get size(): number {
    return this.#subscribers.size
  }

  /**
   * Registers a subscriber after writing its opening frames, in the same tick, so that no
   * event can fall between what it was sent and what it receives live.
   */
  add(
    sink: SseSink,
    storeKeys: Set<string> | undefined,
    readable: ReadRights | undefined,
    opening: Uint8Array[],
    patches: boolean,
    owner: StreamOwner,
  ): Subscription {
    const subscriber = new Subscriber(this, sink, storeKeys, readable, patches, owner)
    for (const frame of opening) subscriber.send(frame)
    if (subscriber.closed) return subscriber
    if (storeKeys === undefined) this.#everything.add(subscriber)
    else for (const key of storeKeys) this.#index(subscriber, key)
    this.#subscribers.add(subscriber)
    this.#byId.set(owner.streamId, subscriber)
    let mine = this.#byPrincipal.get(owner.principalId)
    if (mine === undefined) this.#byPrincipal.set(owner.principalId, (mine = new Set()))
    mine.add(subscriber)
    this.#heartbeat ??= startInterval(() => this.#beat(), this.options.heartbeatMs)
    return subscriber
  }

  /** The open stream with this id, if this hub holds it. */
  stream(streamId: string): Stream | undefined {
    return this.#byId.get(streamId)
  }

  /** The ids of the principals with open streams here. */
  principals(): string[] {
    return [...this.#byPrincipal.keys()]
  }

  /** The open streams of a principal. */
  streamsOf(principalId: string): Iterable<Stream> {
    return this.#byPrincipal.get(principalId) ?? []
  }

  /**
   * Makes a stream of named stores follow `storeKeys` too, after writing `frame` (their state as of
   * now) in the same tick: no event falls between the state it was sent and the ones it receives.
   */
  follow(stream: Stream, storeKeys: readonly string[], frame: Uint8Array): void {
    const subscriber = stream as Subscriber
    if (subscriber.closed || subscriber.storeKeys === undefined) return
    subscriber.send(frame)
    if (subscriber.closed) return
    for (const key of storeKeys) {
      subscriber.storeKeys.add(key)
      this.#index(subscriber, key)
    }
  }

  /** Makes a stream of named stores stop following `storeKeys`. */
  unfollow(stream: Stream, storeKeys: Iterable<string>): void {
    const subscriber = stream as Subscriber
    if (subscriber.storeKeys === undefined) return
    for (const key of storeKeys) if (subscriber.storeKeys.delete(key)) this.#unindex(subscriber, key)
  }

  #index(subscriber: Subscriber, key: string): void {
    let set = this.#byStore.get(key)
    if (set === undefined) this.#byStore.set(key, (set = new Set()))
    set.add(subscriber)
  }

  #unindex(subscriber: Subscriber, key: string): void {
    const set = this.#byStore.get(key)
    set?.delete(subscriber)
    if (set?.size === 0) this.#byStore.delete(key)
  }

  /** Sends a committed event's frame to everyone subscribed to its store. */
  publish(entry: LogEntry): void {
    if (entry.event.changes !== undefined) return this.#publishCommit(entry, entry.event.changes)
    const { storeKey } = entry.event
    const interested = this.#byStore.get(storeKey)
    if (this.#everything.size === 0 && interested === undefined) return // nobody: the frame stays unencoded
    // Each variant encoded once, on first use: the patch frame, or the whole one for older clients.
    for (const subscriber of this.#everything) {
      if (subscriber.readable === undefined || subscriber.readable.may(storeKey)) subscriber.send(subscriber.frameOf(entry))
    }
    if (interested !== undefined) for (const subscriber of interested) subscriber.send(subscriber.frameOf(entry))
  }

  /**
   * A commit of several stores: each subscriber gets the part it follows and may read, as one
   * frame. Frames are encoded once per distinct part (most streams see all of it: the shared
   * frame), never per subscriber.
   */
  #publishCommit(entry: LogEntry, changes: readonly CommittedChange[]): void {
    const parts = new Map<string, Uint8Array | undefined>()
    for (const subscriber of this.#everything) this.#sendPart(subscriber, entry, changes, parts)
    // A subscriber that names its stores is in no other set; one that names several of them, in several.
    const named = new Set<Subscriber>()
    for (const { storeKey } of changes) {
      const interested = this.#byStore.get(storeKey)
      if (interested !== undefined) for (const subscriber of interested) named.add(subscriber)
    }
    for (const subscriber of named) this.#sendPart(subscriber, entry, changes, parts)
  }

  /** Sends `subscriber` the part of a commit it sees: the shared frame for all of it, else one encoded once per part (`parts`). */
  #sendPart(subscriber: Subscriber, entry: LogEntry, changes: readonly CommittedChange[], parts: Map<string, Uint8Array | undefined>): void {
    const sees = (storeKey: string) => (subscriber.storeKeys === undefined ? subscriber.readable === undefined || subscriber.readable.may(storeKey) : subscriber.storeKeys.has(storeKey))
    let part = subscriber.patches ? 'p' : 'w'
    for (const { storeKey } of changes) part += sees(storeKey) ? '1' : '0'
    if (!part.includes('0')) return subscriber.send(subscriber.frameOf(entry))
    if (!parts.has(part)) parts.set(part, encodeCommitFrame(entry.event, sees, subscriber.patches))
    const frame = parts.get(part)
    if (frame !== undefined) subscriber.send(frame)
  }

  /** Internal: forgets a closed subscriber. */
  remove(subscriber: Subscriber): void {
    if (!this.#subscribers.delete(subscriber)) return
    if (subscriber.storeKeys === undefined) this.#everything.delete(subscriber)
    else for (const key of subscriber.storeKeys) this.#unindex(subscriber, key)
    this.#byId.delete(subscriber.streamId)
    const mine = this.#byPrincipal.get(subscriber.principalId)
    mine?.delete(subscriber)
    if (mine?.size === 0) this.#byPrincipal.delete(subscriber.principalId)
    this.onRemoved?.(subscriber)
    if (this.#subscribers.size === 0 && this.#heartbeat !== undefined) {
      clearInterval(this.#heartbeat)
      this.#heartbeat = undefined
    }
  }

  /** Ends every stream, after `farewell` (such as a retry hint) where given. */
  closeAll(farewell?: Uint8Array): void {
    for (const subscriber of this.#subscribers) {
      if (farewell !== undefined && subscriber.queue === undefined) subscriber.sink.write(farewell)
      subscriber.drop()
    }
  }

  #beat(): void {
    // A congested subscriber has bytes on the way already; a ping would only add to them.
    for (const subscriber of this.#subscribers) {
      if (subscriber.queue === undefined) subscriber.send(this.heartbeatFrame)
    }
  }
}

function startInterval(callback: () => void, ms: number): ReturnType<typeof setInterval> {
  const timer = setInterval(callback, ms)
  // A heartbeat alone must not keep a process alive.
  ;(timer as { unref?: () => void }).unref?.()
  return timer
}
