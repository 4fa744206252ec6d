/**
 * How a replica reaches the server's stream: it holds the stream itself when it leads (or when tabs
 * do not share one), or follows the leader tab's. What arrives goes to the replica's stores and,
 * from a leader, on to the other tabs.
 */
import { ZunoError } from '../errors'
import type { Observable } from '../observable'
import { refusesCredentials } from './answers'
import { type ConnectionStatus, StreamConnection, type StreamOptions } from './connection'
import type { CredentialHold } from './credentialHold'
import type { EventCursor } from './eventCursor'
import type { Follows } from './follows'
import type { OpLifecycle } from './opLifecycle'
import type { PresenceRooms, TabPresence } from './presence'
import type { PresenceSender, PresenceSenderDeps } from './presenceSender'
import type { ReplicaStore } from './pendingQueue'
import type { ReplicaOptions } from './replicaOptions'
import type { ReplicaStores } from './replicaStores'
import type { ServerFeed } from './serverFeed'
import type { SyncState } from './syncState'
import { tabChannelName } from './tabChannel'
import { TabRelay } from './tabRelay'
import type { LockManagerLike } from './tabs'

/** What a {@link StreamLink} works with: the stream's options, the replica's parts it shares, and its callbacks. */
export interface StreamLinkDeps {
  readonly stream: StreamOptions
  /** Whether and how tabs share one stream. */
  readonly options: Pick<ReplicaOptions, 'tabs' | 'BroadcastChannel' | 'principal' | 'stores'>
  readonly locks: LockManagerLike | undefined
  /** This tab's name among the tabs, for its life. */
  readonly tabId: string
  readonly sync: SyncState
  readonly feed: ServerFeed
  /** The stores followed at runtime, this tab's and (when it leads) the other tabs'. */
  readonly follows: Follows
  /** The rooms this tab is in. */
  readonly presence: PresenceRooms
  /** This tab's key: what the server knows its presence by. */
  readonly tabKey: string
  /** Where and how the leader posts presence. */
  readonly presenceTransport: Pick<PresenceSenderDeps, 'url' | 'fetch' | 'token' | 'withCredentials' | 'timers'>
  /** An op waiting out a delivery pause goes as soon as the stream is connected again. */
  readonly ops: OpLifecycle
  readonly hold: CredentialHold
  readonly replicas: ReplicaStores
  readonly cursor: EventCursor
  readonly lastError: Observable<ZunoError | undefined>
  /** The replica's `retry()`, which another tab may ask for. */
  readonly retry: () => void
  /** Publishes a store again (another tab's pending ops changed what it shows). */
  readonly show: (replica: ReplicaStore) => void
  /** Publishes stores again as one change (another tab's action changed what they show). */
  readonly showTogether: (replicas: readonly ReplicaStore[]) => void
  /** Whether this replica has ops waiting. */
  readonly waiting: () => boolean
  readonly now: () => number
}

/** How long a leader keeps its reconnect pauses short after a follower said ops wait there; followers say it again on every status the leader relays. */
const FOLLOWERS_WAIT_MS = 15_000

/** The replica's stream: its own when it leads, the leader tab's otherwise. */
export class StreamLink {
  readonly #deps: StreamLinkDeps
  /** The stream, held by the leader tab (or by this replica alone when tabs are off). */
  #connection: StreamConnection | undefined
  /** The other tabs of this browser, when tabs share a stream. */
  readonly #tabs: TabRelay | undefined
  /** Leader: until when another tab has said that ops wait there for the stream. */
  #followersWaitUntil = Number.NEGATIVE_INFINITY
  /** Leader: what every tab of the browser wants shown, told to the stream; loaded with its module when first needed. */
  #sender: PresenceSender | undefined
  /** Leader: what the sender is told once it has loaded, in order. */
  #forSender: Array<(sender: PresenceSender) => void> | undefined
  /** Leader: the stream's id, for a sender that loads after its `hello`. */
  #streamId: string | undefined
  /** Leader: each other tab's key, by tab id, to let its presence go when it closes. */
  readonly #tabKeys = new Map<string, string>()

  constructor(deps: StreamLinkDeps) {
    this.#deps = deps
    const { options } = deps
    const BroadcastChannelImpl = options.BroadcastChannel ?? globalThis.BroadcastChannel
    const tabs = options.tabs ?? typeof window !== 'undefined'
    if (tabs && BroadcastChannelImpl !== undefined) {
      const locks = deps.locks
      const channel = tabChannelName(deps.stream.url, options.principal, options.stores)
      const tabId = deps.tabId
      this.#tabs = new TabRelay(channel, BroadcastChannelImpl, locks, {
        sync: deps.sync,
        tabId: () => tabId,
        leading: () => this.#connection !== undefined,
        lead: () => this.#lead(),
        applySnapshot: (message, eventId) => deps.feed.applySnapshot(message, eventId),
        applyFollowed: (message, eventId) => deps.feed.applyFollowed(message, eventId),
        revoked: (storeKeys) => deps.follows.revoked(storeKeys),
        overflowed: (storeKeys, error) => deps.follows.overflowed(storeKeys, error),
        tabFollows: (tabId, storeKeys) => deps.follows.setTab(tabId, storeKeys.length > 0 ? storeKeys : undefined),
        ownFollows: () => deps.follows.own(),
        applyEvent: (event, eventId) => deps.feed.applyEvent(event, eventId),
        applyCommit: (event, eventId) => deps.feed.applyCommit(event, eventId),
        markSynced: () => deps.feed.markSynced(),
        setStatus: (status) => this.#setStatus(status),
        retry: () => deps.retry(),
        hurry: (now) => {
          this.#followersWaitUntil = deps.now() + FOLLOWERS_WAIT_MS
          if (now && deps.sync.streamLost) this.#connection?.hurry()
        },
        replica: (key) => deps.replicas.get(key),
        show: (replica) => deps.show(replica),
        showTogether: (replicas) => deps.showTogether(replicas),
        knownStates: () => deps.replicas.known(),
        lastEventId: () => deps.cursor.lastEventId,
        applyPresence: (message) => deps.presence.message(message),
        presenceIds: (peers) => this.#identified(peers),
        presenceRefused: (tab, room, refusal) => {
          if (tab === deps.tabKey) deps.presence.refused(room, refusal)
        },
        presenceSent: (tab, count) => {
          if (tab === deps.tabKey) deps.presence.sent(count)
        },
        tabPresence: (tabId, tab, rooms) => this.#tabPresence(tabId, tab, rooms),
        tabBroadcast: (tab, room, data, seq) => this.#toSender((sender) => sender.broadcast(tab, room, data, seq)),
        ownPresence: () => ({ tab: deps.tabKey, rooms: pairs(deps.presence.wanted()) }),
      })
      if (!this.#tabs.leader) this.#tabs.askLeader()
      // A follower's stream is the leader's: what it follows, the leader follows for it.
      const tabs = this.#tabs
      deps.follows.onChange = () => {
        if (this.#connection === undefined) tabs.follows(deps.follows.own())
      }
      // Until it leads, this tab's presence goes to the leader, which shows it on its stream.
      if (this.#connection === undefined) {
        deps.presence.connect({
          changed: (rooms) => tabs.presence(deps.tabKey, pairs(rooms)),
          // Counted as waiting until the leader says it went (presenceSent): a follower holds to the bound too.
          broadcast: (room, data, seq) => tabs.presenceBroadcast(deps.tabKey, room, data, seq),
        })
      }
    } else {
      this.#lead()
    }
  }

  /** Opens the stream: this replica (tab) is the one that holds it, and relays it to the others. */
  #lead(): void {
    const { sync, feed, lastError, hold, follows, presence, tabKey } = this.#deps
    if (sync.closed) return
    // A tab that asked before this one led (its hello reached no leader) is answered once synced.
    sync.lead(this.#tabs !== undefined)
    // Events this tab handed to a leader before it led went with that leader (fire-and-forget).
    presence.sent(undefined)
    presence.connect({
      changed: (rooms) => this.#toSender((sender) => sender.setTab(tabKey, rooms)),
      broadcast: (room, data, seq) => this.#toSender((sender) => sender.broadcast(tabKey, room, data, seq)),
    })
    this.#connection = new StreamConnection(this.#deps.stream, {
      snapshot: (message, eventId) => {
        feed.applySnapshot(message, eventId)
        this.#tabs?.snapshot(message, eventId)
      },
      hello: ({ streamId }) => {
        follows.hello(streamId)
        this.#streamId = streamId
        this.#sender?.hello(streamId)
      },
      presence: (message) => {
        presence.message(message)
        this.#tabs?.presenceEvent(message)
      },
      followed: (message, eventId) => {
        feed.applyFollowed(message, eventId)
        this.#tabs?.followed(message, eventId)
      },
      revoked: ({ stores }) => {
        follows.revoked(stores)
        presence.revoked(stores)
        this.#tabs?.revoked(stores)
      },
      state: (event, eventId) => {
        feed.applyEvent(event, eventId)
        this.#tabs?.state(event, eventId)
      },
      commit: (event, eventId) => {
        feed.applyCommit(event, eventId)
        this.#tabs?.commit(event, eventId)
      },
      resumed: () => {
        feed.markSynced()
        this.#tabs?.resumed()
      },
      status: (status) => {
        this.#setStatus(status)
        this.#tabs?.status(status)
      },
      refused: (error) => {
        lastError.set(error)
        if (refusesCredentials(error)) hold.hold(error)
      },
    })
  }

  /** A control request could not reach the stream: the leader reconnects it, resuming, and its URL names every follow. */
  reconnect(): void {
    this.#connection?.reconnect()
  }

  /** Leader: tells the other tabs which stores its stream cannot follow yet. */
  overflowed(storeKeys: readonly string[], error: ZunoError): void {
    this.#tabs?.overflowed([...storeKeys], error)
  }

  /** Reconnects the stream now: this replica's own, or the leader tab's, asked of it. */
  retry(): void {
    if (this.#connection !== undefined) this.#connection.retry()
    else this.#tabs?.retry()
  }

  /**
   * The stream was lost and an op now waits for it: the leader (this replica, or the leader tab,
   * told so) reconnects at once instead of waiting out its pause.
   */
  hurry(): void {
    if (this.#connection !== undefined) this.#connection.hurry()
    else this.#tabs?.hurry(true)
  }

  /** Leader: whether another tab said lately that ops wait there, so reconnect pauses stay short. */
  followersWaiting(): boolean {
    return this.#deps.now() < this.#followersWaitUntil
  }

  /** Starts over from a snapshot: the leader reopens its stream; a follower asks the leader. */
  resync(): void {
    if (this.#connection !== undefined) this.#connection.resync()
    else this.#tabs?.resync()
  }

  /** Tells the other tabs what this tab's pending ops make of the store (`undefined`: it has none there), when that changed. */
  announce(replica: ReplicaStore, own: { state: unknown } | undefined): void {
    this.#tabs?.announce(replica, own)
  }

  /** {@link announce} for stores that changed together: the other tabs hear of them in one message. */
  announceAll(entries: ReadonlyArray<readonly [ReplicaStore, { state: unknown } | undefined]>): void {
    this.#tabs?.announceAll(entries)
  }

  /** Closes this replica's own stream, if it holds one; this tab's presence leaves at once (the others' stay for the next leader). */
  closeStream(): void {
    if (this.#sender !== undefined) {
      this.#sender.setTab(this.#deps.tabKey, undefined)
      this.#sender.flushNow()
      this.#sender.close()
    }
    this.#connection?.close()
  }

  /**
   * Leader: `call` with the presence sender, loading its module the first time a tab is in a room
   * (an app that never is never downloads it); calls made meanwhile run in order once it is there.
   */
  #toSender(call: (sender: PresenceSender) => void): void {
    if (this.#sender !== undefined) return call(this.#sender)
    if (this.#forSender !== undefined) {
      this.#forSender.push(call)
      return
    }
    const waiting = [call]
    this.#forSender = waiting
    const { presence, tabKey } = this.#deps
    import('./presenceSender').then(
      ({ PresenceSender }) => {
        if (this.#deps.sync.closed) return
        const deps: PresenceSenderDeps = {
          ...this.#deps.presenceTransport,
          reconnect: () => this.#connection?.reconnect(),
          identified: (peers) => {
            this.#identified(peers)
            this.#tabs?.presenceIds({ ...peers })
          },
          refused: (tab, room, refusal) => {
            if (tab === tabKey) presence.refused(room, refusal)
            else this.#tabs?.presenceRefused(tab, room, refusal)
          },
          sent: (tab, count) => {
            if (tab === tabKey) presence.sent(count)
            else this.#tabs?.presenceSent(tab, count)
          },
        }
        const sender = new PresenceSender(deps)
        this.#sender = sender
        this.#forSender = undefined
        for (const waited of waiting) waited(sender)
        if (this.#streamId !== undefined) sender.hello(this.#streamId)
      },
      (error: unknown) => {
        this.#forSender = undefined
        this.#deps.lastError.set(new ZunoError('network', 'Could not load the presence module', { cause: error }))
      },
    )
  }

  /**
   * The page is going away, or into the back-forward cache (`pagehide`): this tab's presence
   * leaves now, in a request that outlives the page (the leader's) or a goodbye to the leader.
   */
  pageHidden(): void {
    this.#deps.presence.hide(true)
    this.#sender?.flushNow()
  }

  /** The page came back from the back-forward cache: this tab shows in its rooms again. */
  pageShown(): void {
    this.#deps.presence.hide(false)
  }

  /** This tab's peer id, among those the server said. */
  #identified(peers: Readonly<Record<string, string>>): void {
    const own = peers[this.#deps.tabKey]
    if (own !== undefined) this.#deps.presence.identified(own)
  }

  /** Leader: another tab's presence (`tab` undefined: it closed). */
  #tabPresence(tabId: string, tab: string | undefined, rooms: ReadonlyArray<[string, unknown]>): void {
    const key = tab ?? this.#tabKeys.get(tabId)
    if (key === undefined) return
    if (tab === undefined || rooms.length === 0) this.#tabKeys.delete(tabId)
    else this.#tabKeys.set(tabId, tab)
    const wanted = new Map<string, { state: unknown; json: string }>()
    for (const [room, state] of rooms) wanted.set(room, { state, json: JSON.stringify(state) })
    // A tab that leaves before any was in a room needs no sender.
    if (wanted.size === 0 && this.#sender === undefined && this.#forSender === undefined) return
    this.#toSender((sender) => sender.setTab(key, wanted))
  }

  /** Leaves the other tabs: called last, once this tab's final announcements are out. */
  leaveTabs(): void {
    this.#tabs?.close()
  }

  #setStatus(status: ConnectionStatus): void {
    this.#deps.sync.streamStatus(status)
    if (status === 'connected') this.#deps.ops.flush()
    // A follower whose ops wait keeps the leader's reconnect pauses short, as the leader's own would.
    else if (this.#connection === undefined && this.#deps.waiting()) this.#tabs?.hurry(false)
  }
}

/** A tab's presence as the tabs pass it: `[room, value]` pairs. */
function pairs(rooms: TabPresence): Array<[string, unknown]> {
  return [...rooms].map(([room, { state }]) => [room, state])
}
