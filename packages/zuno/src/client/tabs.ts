import type { ConnectionStatus } from './connection'
import type { SnapshotMessage, StateEvent } from '../protocol'

/** The part of `BroadcastChannel` the tab layer uses. */
export interface BroadcastChannelLike {
  onmessage: ((event: MessageEvent) => unknown) | null
  postMessage(message: unknown): void
  close(): void
}

/** A constructor of {@link BroadcastChannelLike}. */
export type BroadcastChannelConstructor = new (name: string) => BroadcastChannelLike

/** The part of the Web Locks API (`navigator.locks`) leader election uses. */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal; ifAvailable?: boolean },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>
}

/** Messages between the tabs of one universe (same origin, same URL, same principal, same store filter). */
export type TabMessage =
  /** A new follower asks for the current state; only the leader answers, once it is synced. */
  | { type: 'hello'; from: string }
  /** The leader's stream, relayed: a snapshot (also the answer to `hello`), or one change. */
  | { type: 'snapshot'; from: string; message: SnapshotMessage; eventId: string }
  | { type: 'state'; from: string; event: StateEvent; eventId: string }
  | { type: 'resumed'; from: string }
  /** The leader's connection status. */
  | { type: 'status'; from: string; status: ConnectionStatus }
  /** A tab asks the leader to retry its stream now (new credentials, say). */
  | { type: 'retry'; from: string }
  /**
   * A tab has ops waiting while the stream is lost: the leader keeps its reconnect pauses short
   * while they wait, and with `now` (a new op) reconnects at once.
   */
  | { type: 'hurry'; from: string; now: boolean }
  /** What a tab's own pending ops make of a store (`pending: false` once it has none). */
  | { type: 'pending'; from: string; storeKey: string; baseVersion: number; pending: boolean; state: unknown }

/** What the tab link tells its replica. */
export interface TabHandlers {
  /** This tab now holds the leadership (and so the stream). */
  lead(): void
  message(message: TabMessage): void
}

/**
 * Joins the other tabs of a universe on a BroadcastChannel and takes part in electing the one
 * tab that holds the SSE stream. Election uses a Web Lock: it is held for the life of the leader
 * tab and released by the browser when that tab closes or crashes, so the next tab in line takes
 * over at once. Without Web Locks every tab leads (each holds its own stream).
 */
export class TabLink {
  readonly #channel: BroadcastChannelLike
  readonly #abort = new AbortController()
  #release: (() => void) | undefined
  #leader = false

  constructor(
    readonly tabId: string,
    channelName: string,
    BroadcastChannelImpl: BroadcastChannelConstructor,
    locks: LockManagerLike | undefined,
    handlers: TabHandlers,
  ) {
    this.#channel = new BroadcastChannelImpl(channelName)
    this.#channel.onmessage = (event) => handlers.message(event.data as TabMessage)
    const lead = () => {
      this.#leader = true
      handlers.lead()
    }
    if (locks === undefined) {
      lead()
      return
    }
    locks
      .request(`${channelName}:leader`, { signal: this.#abort.signal }, () => {
        if (this.#abort.signal.aborted) return Promise.resolve()
        lead()
        return new Promise<void>((resolve) => {
          this.#release = resolve
        })
      })
      .catch(() => {
        // Aborted while waiting in line: this tab closed before its turn.
      })
  }

  /** Whether this tab holds the stream. */
  get leader(): boolean {
    return this.#leader
  }

  /** Sends to every other tab (a channel never delivers to its sender). */
  post(message: TabMessage): void {
    this.#channel.postMessage(message)
  }

  /** Leaves: gives up the leadership (or its place in line) and the channel. */
  close(): void {
    this.#abort.abort()
    this.#release?.()
    this.#channel.close()
  }
}
