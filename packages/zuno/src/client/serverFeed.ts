/**
 * Applies what the server says to the replica's stores: snapshots (the truth as of their id), state
 * events and commits of several stores, in order and within one epoch, asking for a fresh snapshot
 * where one is missing.
 */
import type { CommitEvent, SnapshotMessage, StateEvent, StoreChange } from '../protocol'
import { stateOfChange } from './deltas'
import type { EventCursor } from './eventCursor'
import type { OpLifecycle } from './opLifecycle'
import type { PendingOp, PendingQueue, ReplicaStore } from './pendingQueue'
import { confirmFromServer, type ReplicaStores } from './replicaStores'
import type { SyncState } from './syncState'
import type { WriterTags } from './writerTags'

/** What a {@link ServerFeed} works with: the replica's parts it shares, and how to show a store or start over. */
export interface ServerFeedDeps {
  readonly cursor: EventCursor
  readonly replicas: ReplicaStores
  readonly queue: PendingQueue
  readonly sync: SyncState
  /** This replica's writer tags: an event with one of them is its own op's echo. */
  readonly tags: WriterTags
  /** Our own op seen on the stream is confirmed through it; what waited is proposed through it. */
  readonly ops: OpLifecycle
  /** Publishes a store again after its confirmed state changed. */
  readonly show: (replica: ReplicaStore) => void
  /** Publishes stores again as one change, after a commit changed them together. */
  readonly showTogether: (replicas: readonly ReplicaStore[]) => void
  /** Starts over from a snapshot (through the leader tab, when another tab holds the stream). */
  readonly resync: () => void
}

/** Applies snapshots and state events from the stream (or the leader tab) to the replica's stores. */
export class ServerFeed {
  readonly #deps: ServerFeedDeps

  constructor(deps: ServerFeedDeps) {
    this.#deps = deps
  }

  applySnapshot(message: SnapshotMessage, eventId: string): void {
    const epochChanged = this.#deps.cursor.note(eventId)
    if (epochChanged) {
      // An op told `epoch_changed` need not wait out its pause.
      this.#deps.ops.flush()
      // A new history: every store this replica holds starts over from it, the ones it lacks from their initial state.
      for (const [key, replica] of this.#deps.replicas.entries()) {
        // Deletions of the old history say nothing of the new one's versions.
        replica.deletedAt = undefined
        if (!Object.hasOwn(message.stores, key)) {
          confirmFromServer(replica, { version: 0, state: replica.initial })
          this.#deps.show(replica)
        }
      }
    }
    for (const [key, incoming] of Object.entries(message.stores)) {
      const replica = this.#deps.replicas.get(key)
      // A snapshot is the truth as of its id; equal versions take the server's state too
      // (a store's initial state is the server's to declare), and a new epoch restarts versions.
      if (epochChanged || incoming.version >= replica.confirmed.version) confirmFromServer(replica, incoming)
      this.#deps.show(replica)
    }
    if (epochChanged) {
      // Pending ops go on in the new history as if made on what it holds now.
      for (const [, replica] of this.#deps.replicas.entries()) for (const op of replica.pending) {
        op.madeOn = replica.confirmed.version
        delete op.madeIn
      }
    }
    this.#deps.ops.settleHeard(epochChanged)
    this.markSynced()
  }

  /**
   * Stores the stream follows from now on, as of `eventId`: applied like a snapshot of those stores
   * alone, the others untouched.
   */
  applyFollowed(message: SnapshotMessage, eventId: string): void {
    // Another history than the one followed: only a whole snapshot can bring every store to it.
    if (!this.#deps.cursor.sameEpoch(eventId)) return this.#deps.resync()
    this.#deps.cursor.note(eventId)
    const changed: ReplicaStore[] = []
    for (const [key, incoming] of Object.entries(message.stores)) {
      const replica = this.#deps.replicas.get(key)
      if (incoming.version < replica.confirmed.version) continue
      confirmFromServer(replica, incoming)
      changed.push(replica)
    }
    this.#deps.showTogether(changed)
    this.#deps.ops.settleHeard(false)
  }

  /** The server's states are known again: what waited can be proposed. */
  markSynced(): void {
    if (this.#deps.sync.markSynced()) this.#deps.ops.pump()
  }

  applyEvent(event: StateEvent, eventId: string): void {
    if (!this.#deps.cursor.sameEpoch(eventId)) {
      // A history this replica has no snapshot of: applying it would strand the stores it does not
      // mention at versions of the old one. Start over from a snapshot, which resets them all.
      this.#deps.resync()
      return
    }
    const replica = this.#deps.replicas.get(event.storeKey)
    const head = this.#deps.queue.head
    if (head !== undefined && event.opId === head.opId && (head.kind === 'action' || head.replica === replica) && this.#writtenBy(head, event.writer)) {
      // Our own op, seen on the stream before (or instead of) its HTTP answer: a `set`, or an action that wrote one store.
      const made = stateOfChange(replica, event)
      // A patch on a version this replica does not hold: start over from a snapshot, which the op's answer settles against.
      if (made === undefined) return this.#deps.resync()
      this.#deps.cursor.note(eventId)
      if (head.kind === 'state') this.#deps.ops.confirm(head, { version: event.version, state: made.state })
      else this.#deps.ops.echoAction(head, [{ storeKey: event.storeKey, version: event.version, state: made.state }])
      return
    }
    if (event.version > replica.confirmed.version + 1) {
      // Versions are missing in between: never apply out of order; start over from a snapshot.
      this.#deps.resync()
      return
    }
    // Within an epoch versions never go back: an older one comes from an instance that lags. Keep the newer.
    if (event.version <= replica.confirmed.version) {
      this.#deps.cursor.note(eventId)
      return
    }
    const made = stateOfChange(replica, event)
    // A patch that does not apply to what this replica holds: it missed something, so start over.
    if (made === undefined) return this.#deps.resync()
    this.#deps.cursor.note(eventId)
    confirmFromServer(replica, { version: event.version, state: made.state, ...(event.deleted ? { deleted: true } : {}) })
    this.#deps.show(replica)
  }

  /** A commit of several stores (an action's): every change applied, and shown, as one. */
  applyCommit(event: CommitEvent, eventId: string): void {
    if (!this.#deps.cursor.sameEpoch(eventId)) {
      // As for a state event: a history this replica has no snapshot of.
      this.#deps.resync()
      return
    }
    const head = this.#deps.queue.head
    // Our own action, seen on the stream before (or instead of) its HTTP answer.
    const own = head?.kind === 'action' && event.opId === head.opId && this.#writtenBy(head, event.writer)
    const arrived: Array<{ change: StoreChange; replica: ReplicaStore; made: { state: unknown } | undefined }> = []
    for (const change of event.changes) {
      const replica = this.#deps.replicas.get(change.storeKey)
      // Versions missing in between, in any store: never apply half of it; start over from a snapshot.
      if (!own && change.version > replica.confirmed.version + 1) return this.#deps.resync()
      // As for a state event: an older version comes from an instance that lags.
      const made = change.version <= replica.confirmed.version ? undefined : stateOfChange(replica, change)
      // A patch on a version this replica does not hold.
      if (made === undefined && change.version > replica.confirmed.version) return this.#deps.resync()
      arrived.push({ change, replica, made })
    }
    this.#deps.cursor.note(eventId)
    if (own) {
      // Stores this replica holds newer already keep what they hold (the echo skips them).
      const changes = arrived.map(({ change, replica, made }) => ({ storeKey: change.storeKey, version: change.version, state: (made ?? replica.confirmed).state }))
      this.#deps.ops.echoAction(head, changes)
      return
    }
    const changed: ReplicaStore[] = []
    for (const { change, replica, made } of arrived) {
      if (made === undefined) continue
      confirmFromServer(replica, { version: change.version, state: made.state, ...(change.deleted ? { deleted: true } : {}) })
      changed.push(replica)
    }
    this.#deps.showTogether(changed)
  }

  /** Whether `op`'s client wrote an event by `writer`: never before its tag is known, since nothing went out under it. */
  #writtenBy(op: PendingOp, writer: string): boolean {
    const tag = this.#deps.tags.of(op.clientId)
    return tag !== undefined && writer === tag
  }
}
