import type { ActionArgs, ActionSpec } from '../action'
import { ZunoError } from '../errors'
import { newClientId, randomBase64url } from '../id'
import { Observable } from '../observable'
import { appSetup, type ZunoApp } from '../app'
import { ACTION_NAME_PATTERN, STORE_KEY_PATTERN } from '../protocol'
import type { Schemas, StatesOf } from '../schema'
import { type PublishedState, StoreCell, type Updater } from '../store'
import { Universe } from '../universe'
import { Proposer } from './proposer'
import { CredentialHold } from './credentialHold'
import {
  type ActionOp,
  type ConflictPolicy,
  latestOfOtherTabs,
  PendingQueue,
  type ReplicaStore,
  replay,
  replayAll,
  replayOverOtherTabs,
  withOtherTabs,
} from './pendingQueue'
import { OpLifecycle } from './opLifecycle'
import { OutboxKeeper } from './outboxKeeper'
import { ServerFeed } from './serverFeed'
import { SyncState } from './syncState'
import { ReplicaStores } from './replicaStores'
import { EventCursor } from './eventCursor'
import { Follows } from './follows'
import { type PresenceRoom, PresenceRooms } from './presence'
import { type FirstRender, firstRenderOf } from './firstRender'
import type { LockManagerLike } from './tabs'
import type { ConnectionStatus, EventSourceConstructor } from './connection'
import { StreamLink } from './streamLink'
import { computeWriterTag, WriterTags } from './writerTags'
import type { ReadableValue, ReplicaOptions } from './replicaOptions'

export type { ConflictInfo, ConflictPolicy, MergeInput, ReadableValue, RefusedOp, ReplicaOptions } from './replicaOptions'

/**
 * A replica universe: follows an authoritative server over SSE and proposes changes over HTTP.
 *
 * Per store it keeps the confirmed `{version, state}`; one queue holds the pending ops (`set`s and
 * actions) in the order they were made, and one proposal is in flight at a time. What a store shows
 * is the ops replayed over the confirmed states; when the server's state moves (a 409, or another
 * client's event), pending ops are recomputed on it according to the store's {@link ConflictPolicy},
 * and actions run again.
 */
export class ReplicaUniverse<
  TStores extends Record<string, unknown> = Record<string, unknown>,
  TOtherKey extends string = string,
  TActions extends Record<string, unknown> = Record<string, unknown>,
> extends Universe<TStores, TOtherKey> {
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
  /**
   * The stores the last replay of the whole queue showed ops' effects in, while actions wait: the
   * next one shows them again, so an effect an action no longer has (it settled, or ran again and
   * wrote elsewhere) goes away.
   */
  #shownWithActions = new Set<ReplicaStore>()
  readonly #options: ReplicaOptions<Schemas>
  readonly #now: () => number
  /**
   * The stream, this replica's own or the leader tab's. Made last in the constructor: a store shown
   * before then has no other tabs to tell.
   */
  readonly #link: StreamLink | undefined
  readonly #outbox: OutboxKeeper | undefined
  /** The epoch followed and the last event id applied. */
  readonly #cursor = new EventCursor()
  /** Delivers and settles each pending op, in order. */
  readonly #ops: OpLifecycle
  /** The stores followed at runtime, besides the fixed `stores`. */
  readonly #follows: Follows
  /** The rooms this tab is in (`presence()`). */
  readonly #presence = new PresenceRooms()
  /** In a browser: stops hearing `pagehide` and `pageshow`. */
  #stopPageEvents: (() => void) | undefined
  /**
   * With `hydrate`: what the first render shows, to match the server's HTML (for `getServerSnapshot`).
   * Without it there is no server render to match.
   */
  readonly firstRender: FirstRender | undefined

  constructor(options: ReplicaOptions<Schemas>) {
    super()
    this.#options = options
    const newId = options.newId ?? newClientId
    this.#now = options.now ?? Date.now
    this.#queue = new PendingQueue(newId())
    const tags = new WriterTags((clientId) => computeWriterTag(clientId, options.subtle))
    // Learned now, so that the first op need not wait for it (a failure is retried when an op goes).
    tags.learn(this.clientId).catch(() => {})
    this.#replicas = new ReplicaStores((key) => this.cell(key), options.conflictPolicy, options.ids, options.specs)
    const url = options.url.replace(/\/+$/, '')
    const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis)
    const timers = options.timers ?? {
      setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
      clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
    }
    const random = options.random ?? Math.random
    this.#proposer = new Proposer({ url, fetch: fetchImpl, token: options.token, timers, random })
    this.#hold = new CredentialHold(options.token, timers, () => this.#retryNow())
    const EventSourceImpl = options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource
    if (EventSourceImpl === undefined) {
      throw new TypeError('No EventSource here: pass one (on Node.js, the `eventsource` package) as options.EventSource')
    }
    this.#sync = new SyncState(options.outbox !== undefined, () => this.#hold.refusal)
    const locks = options.locks ?? (globalThis.navigator as { locks?: LockManagerLike } | undefined)?.locks
    this.#outbox = options.outbox && new OutboxKeeper(options.outbox, locks, this.clientId, (error) => this.#lastError.set(error))
    const show = (replica: ReplicaStore) => this.#show(replica)
    const showTogether = (replicas: readonly ReplicaStore[]) => this.#showTogether(replicas)
    this.#ops = new OpLifecycle({
      queue: this.#queue,
      proposer: this.#proposer,
      sync: this.#sync,
      cursor: this.#cursor,
      replicas: this.#replicas,
      hold: this.#hold,
      outbox: this.#outbox,
      tags,
      options,
      newId,
      now: this.#now,
      lastError: this.#lastError,
      pendingCount: this.#pendingCount,
      show,
      showTogether,
      localAction: (name, args) => this.#localAction(name, args),
      carried: (storeKey) => this.#follows.carries(storeKey),
    })
    this.#follows = new Follows(options.stores, {
      url,
      fetch: fetchImpl,
      token: options.token,
      withCredentials: options.withCredentials ?? false,
      timers,
      replicas: this.#replicas,
      graceMs: options.followGraceMs ?? 5000,
      reconnect: () => this.#link?.reconnect(),
      refused: (storeKeys, error) => {
        this.#lastError.set(error)
        // Some may be other tabs' follows: they are told too.
        if (error.code === 'too_many_stores') this.#link?.overflowed(storeKeys, error)
      },
    })
    const feed = new ServerFeed({
      cursor: this.#cursor,
      replicas: this.#replicas,
      queue: this.#queue,
      sync: this.#sync,
      tags,
      ops: this.#ops,
      show,
      showTogether,
      resync: () => this.#link?.resync(),
    })
    this.#outbox?.takeOver().then(
      (entries) => this.#ops.restore(entries),
      (error: unknown) => {
        this.#lastError.set(new ZunoError('protocol', 'Could not read the outbox', { cause: error }))
        this.#ops.restore([])
      },
    )
    for (const [key, initial] of Object.entries(options.initial ?? {})) this.cell(key, initial)
    if (options.hydrate !== undefined) feed.applySnapshot(options.hydrate, options.hydrate.cursor)
    this.firstRender = options.hydrate && firstRenderOf(options.hydrate, (key) => this.#replicas.get(key).initial)
    this.#link = new StreamLink({
      stream: {
        url,
        stores: () => this.#follows.streamStores(),
        EventSource: EventSourceImpl,
        fetch: fetchImpl,
        withCredentials: options.withCredentials ?? false,
        timers,
        random,
        hurry: () => this.#queue.length > 0 || this.#link?.followersWaiting() === true,
        resumeFrom: () => this.#cursor.lastEventId,
        token: options.token,
      },
      options,
      locks,
      tabId: this.clientId,
      sync: this.#sync,
      feed,
      follows: this.#follows,
      presence: this.#presence,
      // Its own, never sent to anyone but the server: others see a digest of it with the principal.
      tabKey: randomBase64url(22),
      presenceTransport: { url, fetch: fetchImpl, token: options.token, withCredentials: options.withCredentials ?? false, timers },
      ops: this.#ops,
      hold: this.#hold,
      replicas: this.#replicas,
      cursor: this.#cursor,
      lastError: this.#lastError,
      retry: () => this.retry(),
      show,
      showTogether,
      waiting: () => this.#queue.length > 0,
      now: this.#now,
    })
    this.#stopPageEvents = onPageEvents(
      () => this.#link?.pageHidden(),
      () => this.#link?.pageShown(),
    )
  }

  /**
   * Try again now, the held ops and the stream alike: after the server refused the credentials
   * (call it once the app has new ones: a fresh cookie, say; a new `token()` is noticed by itself),
   * or when the app knows the network is back (a reconnect backoff is cut short).
   */
  retry(): void {
    if (this.#sync.closed) return
    this.#hold.clear()
    this.#follows.retry()
    this.#retryNow()
  }

  /** Reconnects the stream (through the leader tab, when another tab holds it) and sends what waits. */
  #retryNow(): void {
    if (this.#sync.closed) return
    this.#link?.retry()
    this.#sync.publish()
    this.#ops.flush()
    this.#ops.pump()
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

  /**
   * Follows `key` on this replica's stream, without a new connection, until the returned function
   * is called (and for `followGraceMs` more, so a store shown again soon is still there): its state
   * arrives as of the stream's position, then every change. Calls for one key add up; the store
   * stops being followed when the last is released. Tabs that share a stream follow through the
   * leader's. With no `stores` option the stream carries every store already: nothing to do.
   */
  follow(key: keyof TStores & string): () => void
  follow(key: TOtherKey): () => void
  follow(key: string): () => void {
    this.cell(key)
    return this.#follows.follow(key)
  }

  /**
   * Joins `room` (any store key the principal may read) with `initial` as this tab's presence
   * value, until `leave()`: the handle shows the others in the room (this browser's other tabs
   * among them, each its own presence) and sends this tab's value, at most 20 times a second
   * (latest wins), and events broadcast to the room. Never logged or stored. Handles of one room
   * add up; the tab leaves once the last is let go. Tabs that share a stream carry their presence
   * on the leader's. See docs/presence.md.
   */
  presence<P>(room: string, initial: P): PresenceRoom<P>
  /** Joins `room` to watch the others: this tab shows there with `null` until a join that gives a value, or a `set`. */
  presence<P = unknown>(room: string): PresenceRoom<P | null>
  presence<P>(room: string, ...initial: [] | [P]): PresenceRoom<P | null> {
    if (!STORE_KEY_PATTERN.test(room)) throw new ZunoError('invalid_store_key', `Invalid room ${JSON.stringify(room.slice(0, 200))}`)
    if (this.#sync.closed) throw new ZunoError('closed', 'The replica was closed')
    return initial.length === 0 ? this.#presence.join<P | null>(room, null, false) : this.#presence.join<P | null>(room, initial[0])
  }

  /** Closes the stream; ops still pending reject with a `closed` error, and `status` becomes `closed`. */
  close(): void {
    if (!this.#sync.close()) return
    this.#stopPageEvents?.()
    this.#link?.closeStream()
    this.#follows.close()
    this.#hold.clear()
    this.#proposer.close()
    const message = this.#options.outbox ? 'The replica was closed; the op stays in the outbox for the next session' : 'The replica was closed'
    for (const op of this.#queue.clear()) if (op.kind === 'action') op.reject(new ZunoError('closed', message))
    for (const [, replica] of this.#replicas.entries()) {
      for (const op of replica.pending.splice(0)) op.reject(new ZunoError('closed', message))
      this.#show(replica)
    }
    this.#pendingCount.set(0)
    this.#link?.leaveTabs()
    this.#outbox?.close()
    this.#sync.publish()
  }

  /**
   * Runs an action of the app: its effect shows at once (the app's `run` on what the stores show,
   * run again whenever that changes) and the promise resolves once the server accepted it and its
   * changes show here, or rejects with the server's refusal (its effect gone). It goes to the server
   * in order with this replica's `set`s. Arguments the action's schema refuses reject at once with
   * `invalid_args`; an action the app does not define here is sent as it is, with no effect shown.
   */
  act<K extends keyof TActions & string>(name: K, ...[args]: ActionArgs<TActions[K]>): Promise<void> {
    const refusal = this.#refusesNewOp()
    if (refusal !== undefined) return Promise.reject(refusal)
    if (!ACTION_NAME_PATTERN.test(name)) return Promise.reject(new ZunoError('invalid_action', `Invalid action name ${JSON.stringify(name)}`))
    // What the server will get, taken now: the local run sees the same (a Date would reach the
    // server as a string), and a caller that changes its object later changes nothing queued.
    let sent: unknown
    try {
      sent = args === undefined ? undefined : JSON.parse(JSON.stringify(args))
    } catch (cause) {
      return Promise.reject(new ZunoError('invalid_args', `The arguments of ${JSON.stringify(name)} cannot be sent as JSON`, { cause }))
    }
    const local = this.#localAction(name, sent)
    if (local instanceof ZunoError) return Promise.reject(local)
    return new Promise<void>((resolve, reject) => {
      const op = this.#queue.enqueueAction({ name, args: sent, ...local, queuedAt: this.#now(), resolve, reject })
      this.#ops.countPending(1)
      this.#showTogether([])
      this.#ops.save(op)
      if (this.#sync.streamLost) this.#link?.hurry()
      this.#ops.pump()
    })
  }

  /**
   * How this replica runs an action itself: the app's `run` and the arguments its schema made of
   * `args` (no `run` for an action the app does not define here), or the schema's refusal.
   */
  #localAction(name: string, args: unknown): Pick<ActionOp, 'run' | 'localArgs'> | ZunoError {
    const actions = this.#options.actions ?? {}
    const spec = Object.hasOwn(actions, name) ? actions[name] : undefined
    if (spec === undefined) return { run: undefined, localArgs: args }
    const checked = checkArgs(spec, name, args)
    return checked instanceof ZunoError ? checked : { run: spec.run, localArgs: checked.args }
  }

  /** Why a new op cannot be queued now (the replica is closed, or the queue is full), if it cannot. */
  #refusesNewOp(): ZunoError | undefined {
    if (this.#sync.closed) return new ZunoError('closed', 'The replica was closed')
    const limit = this.#options.maxPendingOps ?? 1000
    if (this.#pendingCount.get() >= limit) return new ZunoError('queue_full', `${limit} ops are already waiting; try again later`)
    return undefined
  }

  protected writeStore(cell: StoreCell<unknown>, next: Updater<unknown>): Promise<number> {
    const refusal = this.#refusesNewOp()
    if (refusal !== undefined) return Promise.reject(refusal)
    const replica = this.#replicas.get(cell.key)
    return new Promise<number>((resolve, reject) => {
      const op = this.#queue.enqueue(replica, next, this.#now(), resolve, reject)
      this.#ops.countPending(1)
      this.#show(replica)
      this.#ops.save(op)
      // The stream was lost and may be waiting out a long pause: try now, since someone waits for this op.
      if (this.#sync.streamLost) this.#link?.hurry()
      this.#ops.pump()
    })
  }

  /** A family's store shows its family's initial state until the server's arrives. */
  protected override initialOf(key: string): unknown {
    return this.#options.specs?.(key)?.initial
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
    if (this.#queue.hasActions || this.#shownWithActions.size > 0) return this.#showTogether([replica])
    const state = replay(replica)
    this.#link?.announce(replica, replica.pending.length > 0 ? { state } : undefined)
    replica.cell.publish(withOtherTabs(replica, state), replica.confirmed.version)
  }

  /**
   * Publishes stores as one change: no listener of one hears before the others show their new
   * state. While actions wait, what every store shows comes from the whole queue replayed in order
   * (an action reads and writes any store), and the stores it showed effects in last time are
   * published again with the rest.
   */
  #showTogether(replicas: readonly ReplicaStore[]): void {
    const withActions = this.#queue.hasActions || this.#shownWithActions.size > 0
    const views = withActions ? replayAll(this.#queue.ops, (key) => this.#replicas.get(key)) : undefined
    const shown = new Set(replicas)
    if (views !== undefined) {
      for (const replica of this.#shownWithActions) shown.add(replica)
      for (const replica of views.keys()) shown.add(replica)
      this.#shownWithActions = this.#queue.hasActions ? new Set(views.keys()) : new Set()
    }
    const overOtherTabs = views === undefined ? undefined : this.#overOtherTabs(shown)
    const changes: PublishedState[] = []
    const announcements: Array<[ReplicaStore, { state: unknown } | undefined]> = []
    for (const replica of shown) {
      const pending = views === undefined ? replica.pending.length > 0 : views.has(replica)
      const state = views === undefined ? replay(replica) : pending ? views.get(replica) : replica.confirmed.state
      announcements.push([replica, pending ? { state } : undefined])
      const shownState = overOtherTabs === undefined ? withOtherTabs(replica, state) : overOtherTabs.has(replica) ? overOtherTabs.get(replica) : state
      changes.push({ cell: replica.cell, state: shownState, version: replica.confirmed.version })
    }
    this.#link?.announceAll(announcements)
    StoreCell.publishTogether(changes)
  }

  /**
   * While actions wait and other tabs have pending results in the stores shown or read by an
   * action: what the stores show, this tab's queue replayed over those results.
   */
  #overOtherTabs(shown: ReadonlySet<ReplicaStore>): Map<ReplicaStore, unknown> | undefined {
    const candidates = new Set(shown)
    for (const op of this.#queue.ops) if (op.kind === 'action') for (const replica of op.seen?.keys() ?? []) candidates.add(replica)
    const theirs = new Map<ReplicaStore, unknown>()
    for (const replica of candidates) {
      const latest = latestOfOtherTabs(replica)
      if (latest !== undefined) theirs.set(replica, latest.state)
    }
    return theirs.size === 0 ? undefined : replayOverOtherTabs(this.#queue.ops, theirs, (key) => this.#replicas.get(key))
  }
}

/**
 * The arguments the local run takes, checked with the action's schema when it validates
 * synchronously (an async one is the server's to check), or the refusal `invalid_args`.
 */
function checkArgs(spec: ActionSpec, name: string, args: unknown): { args: unknown } | ZunoError {
  if (spec.args === undefined) {
    return args === undefined ? { args } : new ZunoError('invalid_args', `The action ${JSON.stringify(name)} takes no arguments`)
  }
  let result: ReturnType<NonNullable<ActionSpec['args']>['~standard']['validate']>
  try {
    result = spec.args['~standard'].validate(args)
  } catch (cause) {
    return new ZunoError('invalid_args', `The arguments' schema of ${JSON.stringify(name)} threw`, { cause })
  }
  if (result instanceof Promise) {
    // Checked by the server alone; nothing to show meanwhile is better than a guess.
    result.catch(() => {})
    return { args }
  }
  if (result.issues === undefined) return { args: result.value }
  const issues = result.issues.map((issue) => ({ message: issue.message }))
  return new ZunoError('invalid_args', `The arguments of ${JSON.stringify(name)} do not match its schema`, { issues })
}

/**
 * Connects a replica universe to a Zuno server. With `app` (see `defineZuno`), its stores show
 * their initial states until the server's arrive, writes are checked against their schemas,
 * `store(key)` takes only their keys, typed, and `act(name, args)` only its actions, with their
 * arguments' types; with `schemas`, `store(key)` is typed from them.
 */
export function connect<TStores extends Record<string, unknown>, TActions extends Record<string, unknown>>(
  options: Omit<ReplicaOptions, 'schemas' | 'initial' | 'actions'> & { app: ZunoApp<TStores, TActions>; initial?: Partial<TStores> },
): ReplicaUniverse<TStores, never, TActions>
export function connect<S extends Schemas = Schemas>(options: ReplicaOptions<S>): ReplicaUniverse<Schemas extends S ? Record<string, unknown> : StatesOf<S>>
export function connect(options: ReplicaOptions & { app?: ZunoApp }): ReplicaUniverse {
  const { app, ...rest } = options
  if (app === undefined) return new ReplicaUniverse(rest)
  const { states, schemas, ids, specs } = appSetup(app, rest.initial, rest.schemas)
  // Each action's `run` takes its own arguments' type; the replica calls it with what that schema let through.
  const actions = app.actions as Readonly<Record<string, ActionSpec>>
  return new ReplicaUniverse({ ...rest, initial: states, schemas, ids: { ...ids, ...rest.ids }, actions, specs })
}

/**
 * In a browser, calls `hidden` on `pagehide` (the page unloads, or goes into the back-forward
 * cache) and `shown` when it comes back from that cache; returns what stops it. Elsewhere, nothing.
 */
function onPageEvents(hidden: () => void, shown: () => void): (() => void) | undefined {
  const page = typeof window === 'undefined' ? undefined : (window as unknown as Pick<EventTarget, 'addEventListener' | 'removeEventListener'>)
  if (page?.addEventListener === undefined) return undefined
  const onShow = (event: Event) => {
    if ((event as { persisted?: boolean }).persisted === true) shown()
  }
  page.addEventListener('pagehide', hidden)
  page.addEventListener('pageshow', onShow)
  return () => {
    page.removeEventListener('pagehide', hidden)
    page.removeEventListener('pageshow', onShow)
  }
}
