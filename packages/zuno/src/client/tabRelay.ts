/**
 * A replica's side of the tabs of its browser: the leader relays its stream and greets new tabs, a
 * follower asks the leader for the state and applies what it relays, and every tab tells the
 * others what its pending ops make of a store.
 */
import { ZunoError } from '../errors'
import type { LockManagerLike } from './tabs'
import type { CommitEvent, PresenceMessage, PresenceRefusal, SnapshotMessage, StateEvent, StoreState } from '../protocol'
import type { ConnectionStatus } from './connection'
import type { ReplicaStore } from './pendingQueue'
import type { SyncState } from './syncState'
import { type BroadcastChannelConstructor, TabLink, type TabMessage } from './tabs'

/** What the relay needs of its replica. */
export interface RelayHost {
  readonly sync: SyncState
  /** This tab's name among the tabs, for its life: not its client id, which a fresh identity replaces (then its old announcements would never be withdrawn). */
  tabId(): string
  /** Whether this tab holds the stream. */
  leading(): boolean
  /** This tab was elected: open the stream. */
  lead(): void
  applySnapshot(message: SnapshotMessage, eventId: string): void
  /** Applies stores the stream follows from now on. */
  applyFollowed(message: SnapshotMessage, eventId: string): void
  /** The stream stopped carrying these stores. */
  revoked(storeKeys: string[]): void
  /** The leader's stream cannot follow these stores yet: past what one stream may follow. */
  overflowed(storeKeys: string[], error: ZunoError): void
  /** Leader: what another tab follows through its stream (`undefined`: the tab left). */
  tabFollows(tabId: string, storeKeys: string[]): void
  /** What this tab itself follows at runtime. */
  ownFollows(): string[]
  applyEvent(event: StateEvent, eventId: string): void
  /** Applies a commit of several stores as one change. */
  applyCommit(event: CommitEvent, eventId: string): void
  markSynced(): void
  setStatus(status: ConnectionStatus): void
  retry(): void
  /** Leader: a follower has ops waiting while the stream is lost; `now`: a new one, so reconnect at once. */
  hurry(now: boolean): void
  replica(storeKey: string): ReplicaStore
  show(replica: ReplicaStore): void
  /** Publishes stores again as one change. */
  showTogether(replicas: readonly ReplicaStore[]): void
  /** The stores whose state came from the server (and so can be handed to a new tab). */
  knownStates(): Record<string, StoreState>
  lastEventId(): string | undefined
  /** Follower: a room's presence, relayed by the leader. */
  applyPresence(message: PresenceMessage): void
  /** Follower: the tabs' peer ids, by tab key. */
  presenceIds(peers: Record<string, string>): void
  /** Follower: the server skipped a tab's ops in a room. */
  presenceRefused(tab: string, room: string, refusal: PresenceRefusal): void
  /** Follower: so many of a tab's broadcast events left the leader (`undefined`: a new leader, which holds none of them). */
  presenceSent(tab: string, count: number | undefined): void
  /** Leader: what another tab wants shown (`undefined`: the tab left). */
  tabPresence(tabId: string, tab: string | undefined, rooms: ReadonlyArray<[string, unknown]>): void
  /** Leader: another tab broadcasts to a room. */
  tabBroadcast(tab: string, room: string, data: unknown, seq: number): void
  /** What this tab wants shown, with its key: told again to a new leader. */
  ownPresence(): { tab: string; rooms: Array<[string, unknown]> }
}

/** What only the leader sends: its stream, relayed, and its greeting. */
const RELAYED: ReadonlySet<TabMessage['type']> = new Set(['snapshot', 'state', 'commit', 'resumed', 'status', 'followed', 'revoked', 'overflow', 'presenceEvent', 'presenceIds', 'presenceRefused', 'presenceSent'])

export class TabRelay {
  readonly #link: TabLink
  readonly #host: RelayHost
  #arrivals = 0
  /** The leader's id as of when it led: what its relayed stream says it is from. */
  #from = ''
  /** Follower: the tab whose stream it last heard, and the leaders before it (see {@link #stale}). */
  #leaderHeard: string | undefined
  readonly #formerLeaders = new Set<string>()
  /** Leader: the tabs whose follows it keeps, each watched until it goes. */
  readonly #watched = new Set<string>()

  constructor(channel: string, BroadcastChannelImpl: BroadcastChannelConstructor, locks: LockManagerLike | undefined, host: RelayHost) {
    this.#host = host
    this.#link = new TabLink(host.tabId(), channel, BroadcastChannelImpl, locks, {
      lead: () => {
        this.#from = host.tabId()
        host.lead()
      },
      message: (message) => this.#fromTab(message),
    })
  }

  get leader(): boolean {
    return this.#link.leader
  }

  /** Leader: relays a snapshot of its stream, then answers the tabs that asked while it was not synced. */
  snapshot(message: SnapshotMessage, eventId: string): void {
    this.#link.post({ type: 'snapshot', from: this.#from, message, eventId })
    this.#greetIfAsked()
  }

  state(event: StateEvent, eventId: string): void {
    this.#link.post({ type: 'state', from: this.#from, event, eventId })
  }

  /** Leader: relays stores its stream follows from now on. */
  followed(message: SnapshotMessage, eventId: string): void {
    this.#link.post({ type: 'followed', from: this.#from, message, eventId })
  }

  /** Leader: tells the tabs which stores its stream cannot follow yet. */
  overflowed(stores: string[], error: ZunoError): void {
    this.#link.post({ type: 'overflow', from: this.#from, stores, message: error.message })
  }

  /** Leader: relays stores its stream no longer carries. */
  revoked(stores: string[]): void {
    this.#link.post({ type: 'revoked', from: this.#from, stores })
  }

  /**
   * Follower: tells the leader every store this tab follows at runtime, once this tab holds its own
   * lock: the leader keeps them only while that lock is held, so a tab that crashes takes them along.
   */
  follows(stores: string[]): void {
    const from = this.#host.tabId()
    void this.#link.present.then(() => this.#link.post({ type: 'follows', from, stores }))
  }

  /** Leader: relays a commit of several stores. */
  commit(event: CommitEvent, eventId: string): void {
    this.#link.post({ type: 'commit', from: this.#from, event, eventId })
  }

  resumed(): void {
    this.#link.post({ type: 'resumed', from: this.#from })
    this.#greetIfAsked()
  }

  status(status: ConnectionStatus): void {
    this.#link.post({ type: 'status', from: this.#from, status })
  }

  /** Follower: tells the leader that ops wait here for its lost stream (`now`: a new op, so reconnect at once). */
  hurry(now: boolean): void {
    this.#link.post({ type: 'hurry', from: this.#host.tabId(), now })
  }

  /** Follower: asks the leader to retry its stream now. */
  retry(): void {
    this.#link.post({ type: 'retry', from: this.#host.tabId() })
  }

  /** Follower: asks the leader for one snapshot of what it knows; until it comes, this tab is not `connected`. */
  askLeader(): void {
    this.#host.sync.askLeader()
    this.#resync()
  }

  /** Follower: starts over from a snapshot, asked of the leader. */
  resync(): void {
    this.#resync()
  }

  /**
   * Tells the other tabs what this tab's pending ops make of the store (`own`; `undefined` when it
   * has none there), when that changed.
   */
  announce(replica: ReplicaStore, own: { state: unknown } | undefined): void {
    this.announceAll([[replica, own]])
  }

  /** {@link announce} for stores that changed together, in one message: the other tabs show them together too. */
  announceAll(entries: ReadonlyArray<readonly [ReplicaStore, { state: unknown } | undefined]>): void {
    const changed: Array<{ storeKey: string; baseVersion: number; pending: boolean; state: unknown }> = []
    for (const [replica, own] of entries) {
      const baseVersion = replica.confirmed.version
      const last = replica.announced
      const unchanged = own !== undefined ? last !== undefined && last.state === own.state && last.baseVersion === baseVersion : last === undefined
      if (unchanged) continue
      replica.announced = own && { baseVersion, state: own.state }
      changed.push({ storeKey: replica.cell.key, baseVersion, pending: own !== undefined, state: own ? own.state : null })
    }
    const [first, ...more] = changed
    if (first === undefined) return
    this.#link.post({ type: 'pending', from: this.#host.tabId(), ...first, ...(more.length > 0 ? { more } : {}) })
  }

  close(): void {
    // The leader's stream need not follow for this tab, nor show it, any more (at once: the channel closes next).
    if (!this.#host.leading()) {
      const from = this.#host.tabId()
      this.#link.post({ type: 'follows', from, stores: [] })
      this.#link.post({ type: 'presence', from, tab: this.#host.ownPresence().tab, rooms: [] })
    }
    this.#link.close()
  }

  /** Follower: tells the leader what this tab wants shown, once this tab holds its own lock (so the leader can watch it). */
  presence(tab: string, rooms: Array<[string, unknown]>): void {
    const from = this.#host.tabId()
    void this.#link.present.then(() => this.#link.post({ type: 'presence', from, tab, rooms }))
  }

  /** Follower: a broadcast of this tab, for the leader's stream. */
  presenceBroadcast(tab: string, room: string, data: unknown, seq: number): void {
    this.#link.post({ type: 'presenceBroadcast', from: this.#host.tabId(), tab, room, data, seq })
  }

  /** Leader: relays a room's presence from its stream. */
  presenceEvent(message: PresenceMessage): void {
    this.#link.post({ type: 'presenceEvent', from: this.#host.tabId(), message })
  }

  /** Leader: relays the tabs' peer ids. */
  presenceIds(peers: Record<string, string>): void {
    this.#link.post({ type: 'presenceIds', from: this.#host.tabId(), peers })
  }

  /** Leader: tells a tab so many of its broadcast events went out. */
  presenceSent(tab: string, count: number): void {
    this.#link.post({ type: 'presenceSent', from: this.#host.tabId(), tab, count })
  }

  /** Leader: tells the tabs the server skipped one's ops in a room. */
  presenceRefused(tab: string, room: string, refusal: PresenceRefusal): void {
    this.#link.post({ type: 'presenceRefused', from: this.#host.tabId(), tab, room, refusal })
  }

  #resync(): void {
    this.#link.post({ type: 'hello', from: this.#host.tabId() })
    // A new leader (or one that lost what it knew) hears this tab's follows and presence with its hello.
    this.#tellNewLeader()
  }

  /** What a leader that is new to this tab must carry for it: its follows and its presence. */
  #tellNewLeader(): void {
    const follows = this.#host.ownFollows()
    if (follows.length > 0) this.follows(follows)
    const { tab, rooms } = this.#host.ownPresence()
    if (rooms.length > 0) this.presence(tab, rooms)
    // Events the last leader held went with it (fire-and-forget): they no longer wait.
    this.#host.presenceSent(tab, undefined)
  }

  #fromTab(message: TabMessage): void {
    const host = this.#host
    if (host.sync.closed) return
    const leading = host.leading()
    if (!leading && RELAYED.has(message.type) && this.#stale(message.from)) return
    switch (message.type) {
      case 'hello':
        if (!leading) break
        if (host.sync.greetRequested()) this.#greet()
        break
      case 'snapshot': {
        if (leading) break
        host.applySnapshot(message.message, message.eventId)
        const leaderStatus = host.sync.leaderSnapshot()
        if (leaderStatus !== undefined) host.setStatus(leaderStatus)
        break
      }
      case 'state':
        if (!leading) host.applyEvent(message.event, message.eventId)
        break
      case 'followed':
        if (!leading) host.applyFollowed(message.message, message.eventId)
        break
      case 'revoked':
        if (!leading) host.revoked(message.stores)
        break
      case 'overflow':
        if (!leading) host.overflowed(message.stores, new ZunoError('too_many_stores', message.message))
        break
      case 'follows':
        if (!leading) break
        host.tabFollows(message.from, message.stores)
        this.#watchTab(message.from)
        break
      case 'presence':
        if (!leading) break
        host.tabPresence(message.from, message.tab, message.rooms)
        this.#watchTab(message.from)
        break
      case 'presenceBroadcast':
        if (leading) host.tabBroadcast(message.tab, message.room, message.data, message.seq)
        break
      case 'presenceEvent':
        if (!leading) host.applyPresence(message.message)
        break
      case 'presenceIds':
        if (!leading) host.presenceIds(message.peers)
        break
      case 'presenceRefused':
        if (!leading) host.presenceRefused(message.tab, message.room, message.refusal)
        break
      case 'presenceSent':
        if (!leading) host.presenceSent(message.tab, message.count)
        break
      case 'commit':
        if (!leading) host.applyCommit(message.event, message.eventId)
        break
      case 'resumed':
        // The leader's replay is complete, but that says nothing of a tab that has none of its state yet.
        if (!leading && !host.sync.awaitingLeader) host.markSynced()
        break
      case 'status':
        if (leading) break
        host.setStatus(host.sync.leaderStatus(message.status))
        break
      case 'retry':
        // Another tab has new credentials; they are shared (cookies, storage), so the stream tries them.
        if (leading) host.retry()
        break
      case 'hurry':
        if (leading) host.hurry(message.now)
        break
      case 'pending': {
        const replicas: ReplicaStore[] = []
        const arrival = ++this.#arrivals
        for (const announced of [message, ...(message.more ?? [])]) {
          const replica = host.replica(announced.storeKey)
          if (announced.pending) replica.foreign.set(message.from, { baseVersion: announced.baseVersion, state: announced.state, arrival })
          else replica.foreign.delete(message.from)
          replicas.push(replica)
        }
        if (replicas.length === 1) host.show(replicas[0] as ReplicaStore)
        else host.showTogether(replicas)
        break
      }
    }
  }

  /**
   * Follower: whether a relayed message comes from a leader that has since handed over. Leadership
   * moves only when a leader closes, and the channel keeps order per sender only: a late status
   * of the last leader, heard after the new one's snapshot, would leave this tab unsynced for good.
   */
  #stale(from: string): boolean {
    if (from === this.#leaderHeard) return false
    if (this.#formerLeaders.has(from)) return true
    if (this.#leaderHeard !== undefined) this.#formerLeaders.add(this.#leaderHeard)
    this.#leaderHeard = from
    // A new leader knows nothing of what this tab follows or shows: its stream must carry it too.
    this.#tellNewLeader()
    return false
  }

  /** Leader: drops what a tab follows once it has closed or crashed, said goodbye or not. */
  #watchTab(tabId: string): void {
    if (this.#watched.has(tabId)) return
    this.#watched.add(tabId)
    this.#link.watch(tabId, () => {
      this.#watched.delete(tabId)
      this.#host.tabFollows(tabId, [])
      this.#host.tabPresence(tabId, undefined, [])
    })
  }

  /** Leader, now synced: answers the tabs that asked while it was not. */
  #greetIfAsked(): void {
    if (this.#host.sync.takeGreeting()) this.#greet()
  }

  /** The leader's answer to a new tab: one snapshot of what it knows, and its status. */
  #greet(): void {
    const from = this.#host.tabId()
    this.#link.post({ type: 'snapshot', from, message: { stores: this.#host.knownStates() }, eventId: this.#host.lastEventId() ?? '' })
    this.#link.post({ type: 'status', from, status: this.#host.sync.stream })
  }
}
