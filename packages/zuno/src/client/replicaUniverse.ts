import { isZunoError, ZunoError } from '../errors'
import { newClientId } from '../id'
import { Observable } from '../observable'
import {
  writerTag,
  type SnapshotMessage,
  type StateEvent,
  type StoreState,
} from '../protocol'
import { type Schemas, schemaFor, type StatesOf, validateState } from '../schema'
import type { StoreCell, Updater } from '../store'
import { Universe } from '../universe'
import { type ProposalAnswer, refusesCredentials } from './answers'
import { CONFLICT_BACKOFF_BASE_MS, classify, classifyFailure, DELIVERY_BACKOFF_BASE_MS, Proposer } from './proposer'
import { CredentialHold } from './credentialHold'
import type { OutboxEntry } from './outbox'
import {
  type ConflictPolicy,
  PendingQueue,
  type PendingOp,
  type Renumbered,
  type ReplicaStore,
  replay,
  type WireBody,
  withOtherTabs,
} from './pendingQueue'
import { OutboxKeeper } from './outboxKeeper'
import { SyncState } from './syncState'
import { confirmFromServer, ReplicaStores } from './replicaStores'
import { EventCursor } from './eventCursor'
import { type FirstRender, firstRenderOf } from './firstRender'
import { tabChannelName } from './tabChannel'
import type { LockManagerLike } from './tabs'
import { TabRelay } from './tabRelay'
import {
  type ConnectionStatus,
  type EventSourceConstructor,
  StreamConnection,
  type Timers,
} from './connection'

import type { ReadableValue, ReplicaOptions } from './replicaOptions'

export type { ConflictInfo, ConflictPolicy, MergeInput, ReadableValue, ReplicaOptions } from './replicaOptions'

/**
 * A replica universe: follows an authoritative server over SSE and proposes changes over HTTP.
 *
 * Per store it keeps the confirmed `{version, state}` and a queue of pending ops; what a store
 * shows is the ops replayed over the confirmed state. One proposal per store is in flight; when
 * the server's state moves (a 409, or another client's event), pending ops are recomputed on it
 * according to the store's {@link ConflictPolicy}.
 */
export class ReplicaUniverse<TStores extends Record<string, unknown> = Record<string, unknown>> extends Universe<TStores> {
  readonly role = 'replica' as const
  /** Every pending op of every store, in order, and this replica's identity (client id and last opId). */
  readonly #queue: PendingQueue
  /** Delivers the head of the queue, one proposal at a time, with backoff. */
  readonly #proposer: Proposer
  /** Status, synced, restoring, the tab hand-over and closed: one state machine. */
  readonly #sync: SyncState
  /** Set while the server refuses this replica's credentials: nothing is sent until they change. */
  readonly #hold: CredentialHold
  readonly #pendingCount = new Observable(0)
  readonly #lastError = new Observable<ZunoError | undefined>(undefined)
  readonly #replicas: ReplicaStores
  readonly #options: ReplicaOptions<Schemas>
  readonly #url: string
  readonly #fetch: typeof fetch
  readonly #timers: Timers
  readonly #random: () => number
  readonly #streamOptions: ConstructorParameters<typeof StreamConnection>[0]
  /** The stream, held by the leader tab (or by this replica alone when tabs are off). */
  #connection: StreamConnection | undefined
  /** The other tabs of this browser, when tabs share a stream. */
  readonly #tabs: TabRelay | undefined
  readonly #locks: LockManagerLike | undefined
  readonly #outbox: OutboxKeeper | undefined
  /** The epoch followed and the last event id applied. */
  readonly #cursor = new EventCursor()
  /**
   * With `hydrate`: what the first render shows, to match the server's HTML (for `getServerSnapshot`).
   * Without it there is no server render to match.
   */
  readonly firstRender: FirstRender | undefined

  constructor(options: ReplicaOptions<Schemas>) {
    super()
    this.#options = options
    this.#queue = new PendingQueue((options.newId ?? newClientId)())
    this.#replicas = new ReplicaStores((key) => this.cell(key), options.conflictPolicy)
    this.#url = options.url.replace(/\/+$/, '')
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
    this.#timers = options.timers ?? {
      setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
      clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
    }
    this.#random = options.random ?? Math.random
    this.#proposer = new Proposer({ url: this.#url, fetch: this.#fetch, token: options.token, timers: this.#timers, random: this.#random })
    this.#hold = new CredentialHold(options.token, this.#timers, () => this.#retryNow())
    const EventSourceImpl = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource
    if (EventSourceImpl === undefined) {
      throw new TypeError('No EventSource here: pass one (on Node.js, the `eventsource` package) as options.EventSource')
    }
    this.#sync = new SyncState(options.outbox !== undefined, () => this.#hold.refusal)
    this.#locks = options.locks ?? (globalThis.navigator as { locks?: LockManagerLike } | undefined)?.locks
    this.#outbox = options.outbox && new OutboxKeeper(options.outbox, this.#locks, this.clientId, (error) => this.#lastError.set(error))
    this.#outbox?.takeOver().then(
      (entries) => this.#restore(entries),
      (error: unknown) => {
        this.#lastError.set(new ZunoError('protocol', 'Could not read the outbox', { cause: error }))
        this.#restore([])
      },
    )
    for (const [key, initial] of Object.entries(options.initial ?? {})) this.cell(key, initial)
    if (options.hydrate !== undefined) this.#applySnapshot(options.hydrate, options.hydrate.cursor)
    this.firstRender = options.hydrate && firstRenderOf(options.hydrate, (key) => this.#replicas.get(key).initial)
    this.#streamOptions = {
      url: this.#url,
      stores: options.stores,
      EventSource: EventSourceImpl,
      fetch: this.#fetch,
      withCredentials: options.withCredentials ?? false,
      timers: this.#timers,
      random: this.#random,
      hurry: () => this.#queue.length > 0,
      resumeFrom: () => this.#cursor.lastEventId,
      token: options.token,
    }
    const BroadcastChannelImpl = options.BroadcastChannel ?? globalThis.BroadcastChannel
    const tabs = options.tabs ?? typeof window !== 'undefined'
    if (tabs && BroadcastChannelImpl !== undefined) {
      const locks = this.#locks
      const channel = tabChannelName(this.#url, options.principal, options.stores)
      const tabId = this.clientId
      this.#tabs = new TabRelay(channel, BroadcastChannelImpl, locks, {
        sync: this.#sync,
        tabId: () => tabId,
        leading: () => this.#connection !== undefined,
        lead: () => this.#lead(),
        applySnapshot: (message, eventId) => this.#applySnapshot(message, eventId),
        applyEvent: (event, eventId) => this.#applyEvent(event, eventId),
        markSynced: () => this.#markSynced(),
        setStatus: (status) => this.#setStatus(status),
        retry: () => this.retry(),
        replica: (key) => this.#replicas.get(key),
        show: (replica) => this.#show(replica),
        knownStates: () => this.#replicas.known(),
        lastEventId: () => this.#cursor.lastEventId,
      })
      if (!this.#tabs.leader) this.#tabs.askLeader()
    } else {
      this.#lead()
    }
  }

  /** Opens the stream: this replica (tab) is the one that holds it, and relays it to the others. */
  #lead(): void {
    if (this.#sync.closed) return
    // A tab that asked before this one led (its hello reached no leader) is answered once synced.
    this.#sync.lead(this.#tabs !== undefined)
    this.#connection = new StreamConnection(this.#streamOptions, {
      snapshot: (message, eventId) => {
        this.#applySnapshot(message, eventId)
        this.#tabs?.snapshot(message, eventId)
      },
      state: (event, eventId) => {
        this.#applyEvent(event, eventId)
        this.#tabs?.state(event, eventId)
      },
      resumed: () => {
        this.#markSynced()
        this.#tabs?.resumed()
      },
      status: (status) => {
        this.#setStatus(status)
        this.#tabs?.status(status)
      },
      refused: (error) => {
        this.#lastError.set(error)
        if (refusesCredentials(error)) this.#hold.hold(error)
      },
    })
  }

  /**
   * Try again now, the held ops and the stream alike: after the server refused the credentials
   * (call it once the app has new ones: a fresh cookie, say; a new `token()` is noticed by itself),
   * or when the app knows the network is back (a reconnect backoff is cut short).
   */
  retry(): void {
    if (this.#sync.closed) return
    this.#hold.clear()
    this.#retryNow()
  }

  /** Reconnects the stream (through the leader tab, when another tab holds it) and sends what waits. */
  #retryNow(): void {
    if (this.#sync.closed) return
    if (this.#connection !== undefined) this.#connection.retry()
    else this.#tabs?.retry()
    this.#sync.publish()
    this.#flush()
    this.#pump()
  }


  /**
   * Identifies this replica's proposals; random and never chosen by the app. It changes only when
   * the server has forgotten the client (`unknown_client`): the queue then goes on under a fresh one.
   */
  get clientId(): string {
    return this.#queue.clientId
  }

  /** The connection status. */
  get status(): ReadableValue<ConnectionStatus> {
    return this.#sync.status
  }

  /** Number of ops not yet accepted, over every store. */
  get pending(): ReadableValue<number> {
    return this.#pendingCount
  }

  /** The last error: a refused op, or a failed delivery. */
  get lastError(): ReadableValue<ZunoError | undefined> {
    return this.#lastError
  }

  /** The id of the last event applied: where a reconnect resumes. */
  get lastEventId(): string | undefined {
    return this.#cursor.lastEventId
  }

  /** Closes the stream; ops still pending reject with a `closed` error, and `status` becomes `closed`. */
  close(): void {
    if (!this.#sync.close()) return
    this.#connection?.close()
    this.#hold.clear()
    this.#proposer.close()
    this.#queue.clear()
    for (const [, replica] of this.#replicas.entries()) {
      const message = this.#options.outbox
        ? 'The replica was closed; the op stays in the outbox for the next session'
        : 'The replica was closed'
      for (const op of replica.pending.splice(0)) op.reject(new ZunoError('closed', message))
      this.#show(replica)
    }
    this.#pendingCount.set(0)
    this.#tabs?.close()
    this.#outbox?.close()
    this.#sync.publish()
  }

  protected writeStore(cell: StoreCell<unknown>, next: Updater<unknown>): Promise<number> {
    if (this.#sync.closed) return Promise.reject(new ZunoError('closed', 'The replica was closed'))
    const limit = this.#options.maxPendingOps ?? 1000
    if (this.#pendingCount.get() >= limit) {
      return Promise.reject(new ZunoError('queue_full', `${limit} ops are already waiting; try again later`))
    }
    const replica = this.#replicas.get(cell.key)
    return new Promise<number>((resolve, reject) => {
      const op = this.#queue.enqueue(replica, next, (this.#options.now ?? Date.now)(), resolve, reject)
      this.#countPending(1)
      this.#show(replica)
      this.#save(op)
      // The stream was lost and may be waiting out a long pause: try now, since someone waits for this op.
      if (this.#sync.streamLost) this.#connection?.retry()
      this.#pump()
    })
  }

  /** A late declaration of a store's initial state: shown if the server has said nothing of the store yet. */
  protected override initialDeclared(cell: StoreCell<unknown>, initial: unknown): void {
    const replica = this.#replicas.find(cell.key)
    if (replica === undefined) return super.initialDeclared(cell, initial)
    replica.initial = initial
    if (replica.known || replica.confirmed.version !== 0 || replica.confirmed.state !== undefined) return
    replica.confirmed = { version: 0, state: initial }
    this.#show(replica)
  }

  /** Publishes the pending ops replayed over the confirmed state (and other tabs' results), and tells the other tabs. */
  #show(replica: ReplicaStore): void {
    const state = replay(replica)
    this.#tabs?.announce(replica, state)
    replica.cell.publish(withOtherTabs(replica, state), replica.confirmed.version)
  }

  /** Starts over from a snapshot: the leader reopens its stream; a follower asks the leader. */
  #resync(): void {
    if (this.#connection !== undefined) this.#connection.resync()
    else this.#tabs?.resync()
  }

  /**
   * Proposes the oldest pending op of the whole replica, unless one is on the wire already: the
   * server takes a client's ops in the order they were issued, one at a time.
   */
  #pump(): void {
    const op = this.#queue.head
    if (op === undefined || this.#proposer.busy || !this.#sync.mayPropose) return
    const { replica } = op
    if (op.failure !== undefined) return this.#refuse(op, op.failure)
    this.#proposer.start()
    const key = replica.cell.key
    const epoch = this.#cursor.epoch ?? ''
    // An op in doubt goes again as it went, in the current epoch: if the storage kept it (the same
    // history, or one that survived a new epoch), it is recognised. Otherwise the base goes with the
    // state it was computed on, read now, not after the schema check.
    const resend = op.doubtedIn !== undefined && op.lastSent !== undefined ? { ...op.lastSent, epoch } : undefined
    if (resend === undefined) op.sent = op.result
    const body: WireBody = resend ?? { baseVersion: replica.confirmed.version, state: op.sent, epoch }
    const schema = schemaFor(this.#options.schemas, key)
    const checked = schema === undefined || resend !== undefined ? Promise.resolve() : validateState(schema, key, body.state)
    checked.then(
      () => {
        // Written down before it goes: a reload from here on restores the op as possibly applied.
        op.lastSent = body
        this.#save(op)
        this.#proposer.send(key, body, op).then(
          (answer) => {
            this.#proposer.done()
            this.#settle(op, answer, body)
          },
          (error: unknown) => {
            this.#proposer.done()
            this.#deliveryFailed(op, error, body)
          },
        )
      },
      (invalid: unknown) => {
        this.#proposer.done()
        const error = isZunoError(invalid) ? invalid : new ZunoError('invalid_state', `The schema of ${key} threw`, { cause: invalid })
        this.#refuse(op, error)
      },
    )
  }

  #settle(op: PendingOp, answer: ProposalAnswer, sent: WireBody): void {
    if (this.#queue.head !== op) {
      // Settled already, by our own echo on the stream.
      this.#pump()
      return
    }
    const { replica } = op
    const outcome = classify(op, answer)
    switch (outcome.type) {
      case 'accepted':
        return this.#confirm(op, outcome.confirmed, outcome.opVersion)
      case 'conflict': {
        this.#notApplied(op)
        const { theirs } = outcome
        if (theirs.version > replica.confirmed.version) confirmFromServer(replica, theirs)
        op.conflicts += 1
        this.#options.onConflict?.({ storeKey: replica.cell.key, opId: op.opId, conflicts: op.conflicts, theirs })
        if (op.failure !== undefined) {
          this.#refuse(op, op.failure)
        } else if (replica.policy === 'rollback' || op.conflicts >= (this.#options.maxAttempts ?? 10)) {
          const reason = replica.policy === 'rollback' ? 'the store rolls back on conflict' : `${op.conflicts} conflicts`
          this.#refuse(op, new ZunoError('conflict', `${replica.cell.key}: op ${op.opId} refused (${reason})`))
        } else {
          this.#show(replica)
          this.#retry(op.conflicts - 1, CONFLICT_BACKOFF_BASE_MS)
        }
        return
      }
      case 'epoch_changed':
        // Not processed. Go again once the stream has brought the new epoch (at once, if it has).
        this.#lastError.set(outcome.error)
        // This attempt was not applied; an earlier one in doubt still may have been.
        if (op.doubtedIn === undefined) this.#notApplied(op)
        op.failures += 1
        return this.#retry(sent.epoch !== this.#cursor.epoch ? 0 : op.failures, DELIVERY_BACKOFF_BASE_MS)
      case 'unknown_client':
        return this.#startAfresh(op)
      case 'held':
        if (op.doubtedIn === undefined) this.#notApplied(op)
        this.#lastError.set(outcome.error)
        this.#hold.hold(outcome.error)
        this.#sync.publish()
        return
      case 'refused':
        return this.#refuse(op, outcome.error, { used: outcome.used })
    }
  }

  /**
   * The server keeps no record of this client: it was forgotten, or the storage is new. An op in
   * doubt in the current epoch may have been applied before that, so it is never sent again under
   * another identity: it rejects with `outcome_unknown`. The rest of the queue goes on, in order,
   * under a fresh identity.
   */
  #startAfresh(head: PendingOp): void {
    if (head.doubtedIn === this.#cursor.epoch) {
      this.#refuse(head, new ZunoError('outcome_unknown', `${head.replica.cell.key}: op ${head.opId} was sent, never answered, and the server has since forgotten this client`), { next: false })
    }
    const clientId = (this.#options.newId ?? newClientId)()
    this.#outbox?.adopt(clientId)
    this.#moved(this.#queue.renumberAs(clientId))
    this.#pump()
  }

  /** An answer showed the op was not applied: it may be rebased, and a reload need not treat it as in doubt. */
  #notApplied(op: PendingOp): void {
    op.doubtedIn = undefined
    op.lastSent = undefined
    this.#save(op)
  }

  /** The network or the server failed: the op stays first in line, in doubt, and goes again unchanged after a pause. */
  #deliveryFailed(op: PendingOp, error: unknown, sent: WireBody): void {
    if (this.#sync.closed) return
    const failure = classifyFailure(error)
    this.#lastError.set(failure.error)
    if (this.#queue.head !== op) return this.#pump()
    if (failure.mayHaveApplied) op.doubtedIn = sent.epoch
    op.failures += 1
    this.#retry(op.failures, DELIVERY_BACKOFF_BASE_MS, failure.waitAtLeast)
  }

  /** Proposes again after a jittered pause (none for the first retry after a conflict). */
  #retry(attempt: number, baseMs: number, waitAtLeast = 0): void {
    this.#proposer.retry(attempt, baseMs, () => this.#pump(), waitAtLeast)
  }

  /** Back online: an op waiting out a delivery backoff goes now. */
  #flush(): void {
    if (this.#proposer.flush()) this.#pump()
  }

  /**
   * The op was accepted; `confirmed` is what the server made of it (its schema may have transformed
   * it), or the store's current truth with `opVersion`, the version the op made, for a late answer.
   */
  #confirm(op: PendingOp, confirmed: StoreState, opVersion = confirmed.version): void {
    const { replica } = op
    this.#queue.dequeue(op)
    if (confirmed.version > replica.confirmed.version) confirmFromServer(replica, confirmed)
    this.#countPending(-1)
    this.#show(replica)
    this.#forget(op)
    op.resolve(opVersion)
    this.#pump()
  }

  /**
   * Drops the op and rejects its promise. Unless the server used up its id (`used`: it recorded
   * the refusal), the ops after it of the same client move down one id, so the ids the server sees
   * stay contiguous.
   */
  #refuse(op: PendingOp, error: ZunoError, { used = false, next = true } = {}): void {
    const { replica } = op
    this.#queue.dequeue(op)
    if (!used) this.#moved(this.#queue.freeId(op))
    this.#countPending(-1)
    this.#show(replica)
    this.#forget(op)
    this.#lastError.set(error)
    this.#options.onError?.(error, { storeKey: replica.cell.key, opId: op.opId })
    op.reject(error)
    if (next) this.#pump()
  }

  /** Moves the outbox entries of ops whose ids changed. */
  #moved(renumbered: Renumbered[]): void {
    for (const { op, was } of renumbered) {
      this.#outbox?.forget(was.clientId, was.opId)
      this.#save(op)
    }
  }

  #applySnapshot(message: SnapshotMessage, eventId: string): void {
    const epochChanged = this.#cursor.note(eventId)
    if (epochChanged) {
      // An op told `epoch_changed` need not wait out its pause.
      this.#flush()
      // A new history: every store this replica holds starts over from it, the ones it lacks from their initial state.
      for (const [key, replica] of this.#replicas.entries()) {
        if (!Object.hasOwn(message.stores, key)) {
          confirmFromServer(replica, { version: 0, state: replica.initial })
          this.#show(replica)
        }
      }
    }
    for (const [key, incoming] of Object.entries(message.stores)) {
      const replica = this.#replicas.get(key)
      // A snapshot is the truth as of its id; equal versions take the server's state too
      // (a store's initial state is the server's to declare), and a new epoch restarts versions.
      if (epochChanged || incoming.version >= replica.confirmed.version) confirmFromServer(replica, incoming)
      this.#show(replica)
    }
    this.#markSynced()
  }

  /** The server's states are known again: what waited can be proposed. */
  #markSynced(): void {
    if (this.#sync.markSynced()) this.#pump()
  }

  #applyEvent(event: StateEvent, eventId: string): void {
    if (!this.#cursor.sameEpoch(eventId)) {
      // A history this replica has no snapshot of: applying it would strand the stores it does not
      // mention at versions of the old one. Start over from a snapshot, which resets them all.
      this.#resync()
      return
    }
    const replica = this.#replicas.get(event.storeKey)
    const head = this.#queue.head
    if (head !== undefined && head.replica === replica && event.opId === head.opId && event.writer === writerTag(head.clientId)) {
      // Our own op, seen on the stream before (or instead of) its HTTP answer.
      this.#cursor.note(eventId)
      this.#confirm(head, { version: event.version, state: event.state })
      return
    }
    if (event.version > replica.confirmed.version + 1) {
      // Versions are missing in between: never apply out of order; start over from a snapshot.
      this.#resync()
      return
    }
    this.#cursor.note(eventId)
    // Within an epoch versions never go back: an older one comes from an instance that lags. Keep the newer.
    if (event.version <= replica.confirmed.version) return
    confirmFromServer(replica, { version: event.version, state: event.state })
    this.#show(replica)
  }

  /** Ops queued before a reload go first (see {@link PendingQueue.restore}); nothing was proposed while they were read. */
  #restore(entries: OutboxEntry[]): void {
    this.#sync.restored()
    const restored = this.#queue.restore(entries, (key) => this.#replicas.get(key))
    this.#countPending(restored.length)
    for (const replica of new Set(restored.map((op) => op.replica))) this.#show(replica)
    this.#pump()
  }

  #save(op: PendingOp): void {
    this.#outbox?.saveOp(op)
  }

  #forget(op: PendingOp): void {
    this.#outbox?.forget(op.clientId, op.opId)
  }

  #setStatus(status: ConnectionStatus): void {
    this.#sync.streamStatus(status)
    if (status === 'connected') this.#flush()
  }

  #countPending(delta: number): void {
    this.#pendingCount.set(this.#pendingCount.get() + delta)
  }
}

/** Connects a replica universe to a Zuno server; with `schemas`, `store(key)` is typed from them. */
export function connect<S extends Schemas = Schemas>(
  options: ReplicaOptions<S>,
): ReplicaUniverse<Schemas extends S ? Record<string, unknown> : StatesOf<S>> {
  return new ReplicaUniverse(options)
}
