import type { ConnectionStatus } from './connection'
import type { CommitEvent, PresenceMessage, PresenceRefusal, SnapshotMessage, StateEvent } from '../protocol'

/** The part of `BroadcastChannel` the tab layer uses. */
export interface BroadcastChannelLike {
  /** Set by Zuno to hear the other tabs. */
  onmessage: ((event: MessageEvent) => unknown) | null
  /** Sends to every other tab on the channel (structured clone, never to itself). */
  postMessage(message: unknown): void
  /** Leaves the channel when the replica closes. */
  close(): void
}

/** A constructor of {@link BroadcastChannelLike}. */
export type BroadcastChannelConstructor = new (name: string) => BroadcastChannelLike

/** The part of the Web Locks API (`navigator.locks`) leader election uses. */
export interface LockManagerLike {
  /** Holds the lock `name` until `callback`'s promise settles; aborted by `options.signal` while waiting. */
  request(
    name: string,
    options: { signal?: AbortSignal; ifAvailable?: boolean },
    callback: (lock: unknown) => Promise<unknown>,
  ): Promise<unknown>
}

/** Messages between the tabs of one universe (same origin, same URL, same principal, same store filter). */
export type TabMessage =
  /** A new follower asks for the current state; only the leader answers, once it is synced. */
  | {
      /** The kind of message. */
      type: 'hello'
      /** The sending tab's id: a tab ignores what it sent itself. */
      from: string
    }
  /** The leader's stream, relayed: a snapshot (also the answer to `hello`), or one change. */
  | {
      /** The kind of message. */
      type: 'snapshot'
      /** The sending tab's id. */
      from: string
      /** The snapshot as the leader received it. */
      message: SnapshotMessage
      /** Its event id, so a follower that becomes leader resumes from there. */
      eventId: string
    }
  | {
      /** The kind of message. */
      type: 'state'
      /** The sending tab's id. */
      from: string
      /** The change as the leader received it. */
      event: StateEvent
      /** Its event id, so a follower that becomes leader resumes from there. */
      eventId: string
    }
  | {
      /** The kind of message: a change of several stores at once, to apply as one. */
      type: 'commit'
      /** The sending tab's id. */
      from: string
      /** The commit as the leader received it. */
      event: CommitEvent
      /** Its event id, so a follower that becomes leader resumes from there. */
      eventId: string
    }
  | {
      /** The kind of message: the leader's resumed stream has caught up. */
      type: 'resumed'
      /** The sending tab's id. */
      from: string
    }
  /** The leader's stream, relayed: stores it follows from now on, as of `eventId`. */
  | {
      /** The kind of message. */
      type: 'followed'
      /** The sending tab's id. */
      from: string
      /** The stores as the leader received them. */
      message: SnapshotMessage
      /** Its event id. */
      eventId: string
    }
  /** The leader's stream, relayed: stores the principal may no longer read. */
  | {
      /** The kind of message. */
      type: 'revoked'
      /** The sending tab's id. */
      from: string
      /** The stores revoked. */
      stores: string[]
    }
  /** The leader's stream cannot follow these stores yet (it follows as many as one stream may): told to the tabs that asked. */
  | {
      /** The kind of message. */
      type: 'overflow'
      /** The sending tab's id. */
      from: string
      /** The stores waiting. */
      stores: string[]
      /** What the leader was told (`too_many_stores`). */
      message: string
    }
  /** Every store a tab follows at runtime (sent whole on each change, and empty as it leaves): the leader's stream follows them too. */
  | {
      /** The kind of message. */
      type: 'follows'
      /** The sending tab's id. */
      from: string
      /** The stores. */
      stores: string[]
    }
  /** A tab's presence, sent whole on each change (no room as it leaves): the leader's stream shows it. */
  | {
      /** The kind of message. */
      type: 'presence'
      /** The sending tab's id. */
      from: string
      /** The tab's key, which the server knows it by. */
      tab: string
      /** Its value per room. */
      rooms: Array<[room: string, state: unknown]>
    }
  /** A tab broadcasts an event to a room, through the leader's stream. */
  | {
      /** The kind of message. */
      type: 'presenceBroadcast'
      /** The sending tab's id. */
      from: string
      /** The tab's key. */
      tab: string
      /** The room. */
      room: string
      /** The event. */
      data: unknown
      /** Its number, the tab's ({@link PresenceOp.seq}). */
      seq: number
    }
  /** The leader's stream, relayed: who is in a room, and what they broadcast. */
  | {
      /** The kind of message. */
      type: 'presenceEvent'
      /** The sending tab's id. */
      from: string
      /** The event as the leader received it. */
      message: PresenceMessage
    }
  /** The leader, relaying the server's answer: each tab's peer id, by tab key. */
  | {
      /** The kind of message. */
      type: 'presenceIds'
      /** The sending tab's id. */
      from: string
      /** Peer ids by tab key. */
      peers: Record<string, string>
    }
  /** The leader: so many of a tab's broadcast events went out (or were dropped with their request): room for as many more. */
  | {
      /** The kind of message. */
      type: 'presenceSent'
      /** The sending tab's id. */
      from: string
      /** The tab's key. */
      tab: string
      /** How many events. */
      count: number
    }
  /** The leader, relaying the server's answer: a tab's ops in a room were skipped. */
  | {
      /** The kind of message. */
      type: 'presenceRefused'
      /** The sending tab's id. */
      from: string
      /** The tab's key. */
      tab: string
      /** The room. */
      room: string
      /** Why. */
      refusal: PresenceRefusal
    }
  /** The leader's connection status. */
  | {
      /** The kind of message. */
      type: 'status'
      /** The sending tab's id. */
      from: string
      /** What every tab should show as its status. */
      status: ConnectionStatus
    }
  /** A tab asks the leader to retry its stream now (new credentials, say). */
  | {
      /** The kind of message. */
      type: 'retry'
      /** The sending tab's id. */
      from: string
    }
  /**
   * A tab has ops waiting while the stream is lost: the leader keeps its reconnect pauses short
   * while they wait, and with `now` (a new op) reconnects at once.
   */
  | {
      /** The kind of message. */
      type: 'hurry'
      /** The sending tab's id. */
      from: string
      /** Reconnect at once instead of only shortening the pauses. */
      now: boolean
    }
  /** What a tab's own pending ops make of a store (`pending: false` once it has none). */
  | {
      /** The kind of message. */
      type: 'pending'
      /** The sending tab's id. */
      from: string
      /** The store the ops change. */
      storeKey: string
      /** The version the ops are based on; others drop the guess once the store passes it. */
      baseVersion: number
      /** Whether the tab still has ops waiting for this store. */
      pending: boolean
      /** The state the tab shows with its ops applied, so the other tabs show it too. */
      state: unknown
      /** Other stores whose announcement changed with this one (an action wrote them together): shown together. */
      more?: Array<{
        /** The store. */
        storeKey: string
        /** As `baseVersion` above. */
        baseVersion: number
        /** As `pending` above. */
        pending: boolean
        /** As `state` above. */
        state: unknown
      }>
    }

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
  readonly #channelName: string
  readonly #locks: LockManagerLike | undefined
  readonly #abort = new AbortController()
  #release: (() => void) | undefined
  #releaseTab: (() => void) | undefined
  #leader = false
  /**
   * Settles once this tab holds its own lock (`<channel>:tab:<tabId>`), which it keeps for its
   * life: the browser releases it when the tab closes or crashes, which is how the others learn it
   * is gone ({@link watch}). What another tab should keep only while this one lives is sent after it.
   */
  readonly present: Promise<void>

  constructor(
    readonly tabId: string,
    channelName: string,
    BroadcastChannelImpl: BroadcastChannelConstructor,
    locks: LockManagerLike | undefined,
    handlers: TabHandlers,
  ) {
    this.#channel = new BroadcastChannelImpl(channelName)
    this.#channelName = channelName
    this.#locks = locks
    this.#channel.onmessage = (event) => handlers.message(event.data as TabMessage)
    this.present =
      locks === undefined
        ? Promise.resolve()
        : new Promise<void>((held) => {
            locks
              .request(`${channelName}:tab:${tabId}`, { signal: this.#abort.signal }, () => {
                held()
                return new Promise<void>((resolve) => {
                  this.#releaseTab = resolve
                })
              })
              .catch(() => {})
          })
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

  /** Sends to every other tab (a channel never delivers to its sender); nothing once this tab has left. */
  post(message: TabMessage): void {
    // Late callers (an answer that arrives after the tab closed) have nobody left to tell.
    if (this.#abort.signal.aborted) return
    this.#channel.postMessage(message)
  }

  /**
   * Calls `gone` once the tab `tabId` has closed or crashed (its lock is free), unless this tab
   * closes first. Without Web Locks every tab leads alone, and there is no other tab to watch.
   */
  watch(tabId: string, gone: () => void): void {
    const signal = this.#abort.signal
    this.#locks
      ?.request(`${this.#channelName}:tab:${tabId}`, { signal }, () => {
        if (!signal.aborted) gone()
        return Promise.resolve()
      })
      .catch(() => {})
  }

  /** Leaves: gives up the leadership (or its place in line), its own lock and the channel. */
  close(): void {
    this.#abort.abort()
    this.#release?.()
    this.#releaseTab?.()
    this.#channel.close()
  }
}
