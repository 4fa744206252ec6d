import type { BroadcastChannelConstructor, BroadcastChannelLike, LockManagerLike } from '../../src/client/tabs'
import type { VirtualClock } from './virtualClock'

/** One request for a lock: granted, or waiting in line. */
interface LockRequest {
  /** The tab that asked, so the browser can tell which tab leads. */
  tab: string
  grant: () => void
}

/** Exclusive locks by name, as one origin's `navigator.locks` holds them. */
interface LockState {
  holder: LockRequest | undefined
  /** Waiters, first come first served. */
  waiting: LockRequest[]
}

/**
 * One simulated browser: the BroadcastChannels and Web Locks its tabs share, both on the virtual
 * clock. A channel delivers to every other open channel of its name (never to its sender), each
 * message after a seeded latency and in the order its sender posted; locks are exclusive, granted
 * in request order, and a waiter's `signal` takes it out of line.
 */
export class SimBrowser {
  readonly #channels = new Map<string, Set<SimChannel>>()
  readonly #locks = new Map<string, LockState>()
  /** How many times a lock was granted: each is a tab taking the lead. */
  grants = 0

  constructor(
    readonly clock: VirtualClock,
    readonly latency: () => number,
  ) {}

  /** The `BroadcastChannel` class of this browser's tabs. */
  channelFor(): BroadcastChannelConstructor {
    const browser = this
    return class extends SimChannel {
      constructor(name: string) {
        super(browser, name)
      }
    }
  }

  /** `navigator.locks` as one tab sees it: requests are noted as that tab's. */
  locksFor(tab: string): LockManagerLike {
    return { request: (name, options, callback) => this.#request(tab, name, options, callback) }
  }

  /** The tab holding the lock `name`, if any. */
  holder(name: string): string | undefined {
    return this.#locks.get(name)?.holder?.tab
  }

  /** Names of the locks held now. */
  heldLocks(): string[] {
    return [...this.#locks].filter(([, state]) => state.holder !== undefined).map(([name]) => name)
  }

  /** Internal: a channel opened. */
  join(channel: SimChannel): void {
    const open = this.#channels.get(channel.name) ?? new Set()
    open.add(channel)
    this.#channels.set(channel.name, open)
  }

  /** Internal: a channel closed; nothing more reaches it. */
  leave(channel: SimChannel): void {
    this.#channels.get(channel.name)?.delete(channel)
  }

  /** Internal: the channels a message posted now on `from` goes to. */
  receivers(from: SimChannel): SimChannel[] {
    return [...(this.#channels.get(from.name) ?? [])].filter((channel) => channel !== from)
  }

  #request(
    tab: string,
    name: string,
    options: { signal?: AbortSignal; ifAvailable?: boolean },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown> {
    const state = this.#locks.get(name) ?? { holder: undefined, waiting: [] }
    this.#locks.set(name, state)
    const { signal } = options
    if (signal?.aborted) return Promise.reject(signal.reason)
    const free = state.holder === undefined && state.waiting.length === 0
    if (!free && options.ifAvailable) {
      // Not available: the callback runs at once with no lock, as the Web Locks API does.
      return Promise.resolve().then(() => callback(null))
    }
    return new Promise((resolve, reject) => {
      const request: LockRequest = {
        tab,
        grant: () => {
          signal?.removeEventListener('abort', abandon)
          state.holder = request
          this.grants += 1
          // The lock is held until the callback's promise settles, however it settles.
          Promise.resolve()
            .then(() => callback({ name, mode: 'exclusive' }))
            .then(resolve, reject)
            .finally(() => this.#release(state, request))
        },
      }
      const abandon = () => {
        const index = state.waiting.indexOf(request)
        if (index === -1) return
        state.waiting.splice(index, 1)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', abandon)
      state.waiting.push(request)
      this.#grantNext(state)
    })
  }

  #release(state: LockState, request: LockRequest): void {
    if (state.holder !== request) return
    state.holder = undefined
    // The next in line gets it on the next turn of the clock, as a browser grants it asynchronously.
    this.clock.setTimeout(() => this.#grantNext(state), 0)
  }

  #grantNext(state: LockState): void {
    if (state.holder !== undefined) return
    state.waiting.shift()?.grant()
  }
}

/** One tab's end of a named channel. */
class SimChannel implements BroadcastChannelLike {
  onmessage: ((event: MessageEvent) => unknown) | null = null
  #closed = false
  /** When this channel's last message reaches each receiver: later ones never overtake it. */
  readonly #lastDelivery = new WeakMap<SimChannel, number>()

  constructor(
    readonly browser: SimBrowser,
    readonly name: string,
  ) {
    browser.join(this)
  }

  postMessage(message: unknown): void {
    if (this.#closed) throw new DOMException('The channel is closed', 'InvalidStateError')
    const { clock } = this.browser
    for (const receiver of this.browser.receivers(this)) {
      // Each receiver gets its own copy, taken now, as structured cloning does.
      const data = structuredClone(message)
      const at = Math.max(clock.now + this.browser.latency(), this.#lastDelivery.get(receiver) ?? 0)
      this.#lastDelivery.set(receiver, at)
      clock.setTimeout(() => receiver.deliver(data), at - clock.now)
    }
  }

  close(): void {
    this.#closed = true
    this.browser.leave(this)
  }

  /** Internal: a message arrives, unless this end closed since it was posted. */
  deliver(data: unknown): void {
    if (this.#closed) return
    this.onmessage?.({ data } as MessageEvent)
  }
}
