import type { LogEntry } from './log'
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

class Subscriber implements Subscription {
  /** Frames waiting while the transport is congested; `undefined` while it is not. */
  queue: Uint8Array[] | undefined
  queuedBytes = 0
  closed = false

  constructor(
    readonly hub: Hub,
    readonly sink: SseSink,
    readonly storeKeys: ReadonlySet<string> | undefined,
    /** For a subscriber to every store: which ones it may read (`undefined`: all). */
    readonly readable: ((storeKey: string) => boolean) | undefined,
    /** Whether its client reads patches (`?patches=1`); otherwise every change goes whole. */
    readonly patches: boolean,
  ) {}

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
  /** Subscribers to every store. */
  readonly #everything = new Set<Subscriber>()
  /** Subscribers to a few stores, by store key. */
  readonly #byStore = new Map<string, Set<Subscriber>>()
  #heartbeat: ReturnType<typeof setInterval> | undefined

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
    storeKeys: ReadonlySet<string> | undefined,
    readable: ((storeKey: string) => boolean) | undefined,
    opening: Uint8Array[],
    patches: boolean,
  ): Subscription {
    const subscriber = new Subscriber(this, sink, storeKeys, readable, patches)
    for (const frame of opening) subscriber.send(frame)
    if (subscriber.closed) return subscriber
    if (storeKeys === undefined) {
      this.#everything.add(subscriber)
    } else {
      for (const key of storeKeys) {
        let set = this.#byStore.get(key)
        if (set === undefined) this.#byStore.set(key, (set = new Set()))
        set.add(subscriber)
      }
    }
    this.#subscribers.add(subscriber)
    this.#heartbeat ??= startInterval(() => this.#beat(), this.options.heartbeatMs)
    return subscriber
  }

  /** Sends a committed event's frame to everyone subscribed to its store. */
  publish(entry: LogEntry): void {
    if (entry.event.changes !== undefined) return this.#publishCommit(entry, entry.event.changes)
    const { storeKey } = entry.event
    const interested = this.#byStore.get(storeKey)
    if (this.#everything.size === 0 && interested === undefined) return // nobody: the frame stays unencoded
    // Each variant encoded once, on first use: the patch frame, or the whole one for older clients.
    for (const subscriber of this.#everything) {
      if (subscriber.readable === undefined || subscriber.readable(storeKey)) subscriber.send(subscriber.frameOf(entry))
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
    const sees = (storeKey: string) => (subscriber.storeKeys === undefined ? subscriber.readable === undefined || subscriber.readable(storeKey) : subscriber.storeKeys.has(storeKey))
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
    if (subscriber.storeKeys === undefined) {
      this.#everything.delete(subscriber)
    } else {
      for (const key of subscriber.storeKeys) {
        const set = this.#byStore.get(key)
        set?.delete(subscriber)
        if (set?.size === 0) this.#byStore.delete(key)
      }
    }
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
