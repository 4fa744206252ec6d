/**
 * The client-wide ordered queue of pending ops and the per-store lists, and the replay that
 * computes what a store shows from its confirmed state and its pending ops. Pure: no I/O, no timers.
 */
import { type ActionSpec, DELETED, runAction, type StoreRead } from '../action'
import { ZunoError } from '../errors'
import { applyPatch, type IdPattern, type Patch } from '../patch'
import type { StoreChange, StoreState } from '../protocol'
import { applyUpdater, type StoreCell, type Updater } from '../store'
import type { OutboxEntry, StateEntry } from './outbox'

/** What a custom merge gets: the state the op was computed on, what it made of it, and the server's newer state. */
export interface MergeInput<T = unknown> {
  /** The confirmed state the op was made on: what both sides started from. */
  base: T
  /** What the op made of `base`. */
  mine: T
  /** The server's state now, which someone else's change moved away from `base`. */
  theirs: T
}

/**
 * What a replica does with a pending op when the server's state moves under it:
 * - `rebase` (default): re-run the op on the server's state (updater functions run again; plain values stay);
 * - `rollback`: on a conflict, drop the op, reject its promise and show the server's state;
 * - `{ merge }`: compute the state to propose from the base, the op's result and the server's state.
 */
export type ConflictPolicy =
  | 'rebase'
  | 'rollback'
  | {
      /** Returns the state to propose on `theirs`; it runs again if that one conflicts too. */
      merge(input: MergeInput): unknown
    }

/** What every pending op has, a `set` or an action: its ids, its caller's promise and its delivery. */
interface OpCommon {
  /** This replica's id, or the one of the session that queued the op before a reload; a fresh one after `unknown_client`. */
  clientId: string
  /** The op's number under `clientId`: the server takes a client's ops in this order. */
  opId: number
  /** When `set` or `act` was called (ms since the epoch); restored ops replay in this order. */
  readonly queuedAt: number
  /** Deliveries that failed in a row (network, 5xx), for backoff. */
  failures: number
  /**
   * The epoch of an attempt that got no definitive answer (the network failed, a 5xx, a reload
   * mid-request): it may have been applied there. Until an answer settles that, the op goes again
   * as `lastSent` says, so the server can recognise it.
   */
  doubtedIn: string | undefined
}

/** One `set` waiting to be accepted. */
export interface StateOp extends OpCommon {
  /** Tells it from an action. */
  readonly kind: 'state'
  /** The store it writes. */
  readonly replica: ReplicaStore
  /** The value or updater given to `set`. */
  readonly update: Updater<unknown>
  /** Settles the caller's promise with the version the op made. */
  readonly resolve: (version: number) => void
  /** Settles the caller's promise with the refusal. */
  readonly reject: (error: ZunoError) => void
  /** Whether `result` has been computed, on which state, and what it is. */
  computed: boolean
  basedOn: unknown
  result: unknown
  /** The state of the proposal last sent: after acceptance, the store's state. */
  sent: unknown
  /** Proposals answered 409 so far. */
  conflicts: number
  /** Set when the updater threw: the op is not proposed (again) and rejects with this. */
  failure: ZunoError | undefined
  /** The body of the attempt on the wire, or of the last one, until an answer shows it was not applied. */
  lastSent: WireBody | undefined
  /** Set when the server could not apply a patch of it: it goes whole from then on. */
  whole?: true
  /** The confirmed version when `set` was called (absent for an op restored after a reload): a deletion past it refuses the op. */
  madeOn?: number
  /** The epoch of `madeOn`, for an op restored after a reload: in another epoch, `madeOn` says nothing. */
  madeIn?: string
}

/** One action waiting to be accepted: the server runs it; until then this replica shows its own run of it. */
export interface ActionOp extends OpCommon {
  /** Tells it from a `set`. */
  readonly kind: 'action'
  /** The action's name. */
  readonly name: string
  /** Its arguments as given (`undefined`: none); they go on the wire unchanged on every attempt. */
  readonly args: unknown
  /** The arguments the local run takes: the schema's output when it checked them. */
  readonly localArgs: unknown
  /** The app's mutation, run on what the stores show; `undefined` for an action this replica does not know (no optimistic effect). */
  readonly run: ActionSpec['run'] | undefined
  /** Settles the caller's promise once the server accepted the action and its changes show. */
  readonly resolve: () => void
  /** Settles the caller's promise with the refusal. */
  readonly reject: (error: ZunoError) => void
  /** Each store the last local run read, with the state it saw: it runs again when one of them shows another. `undefined` before it ran. */
  seen: Map<ReplicaStore, unknown> | undefined
  /** What the last local run wrote, by store (nothing when it threw or refused). */
  writes: Map<ReplicaStore, unknown>
  /**
   * The epoch of the attempt on the wire, or of the last one, until an answer shows it was not
   * applied; and when the first of those attempts went (the replica's clock), for a resend's `resentAfterMs`.
   */
  lastSent: { epoch: string; at?: number } | undefined
  /**
   * The server's answer, when it came before the stream had brought every commit under it (a version
   * of a followed store past the next one): the action retires when its own event arrives, so no
   * render shows part of a commit the stream has yet to bring.
   */
  heard?: readonly StoreChange[]
  /**
   * The stores its own event confirmed, when that event (the part the stream follows) came before
   * the answer and did not carry every store the action wrote here: it no longer runs, keeps
   * showing what it wrote elsewhere, and retires with the answer.
   */
  echoed?: ReadonlySet<ReplicaStore>
}

/** An op of the queue: a `set` of one store, or an action. */
export type PendingOp = StateOp | ActionOp

/**
 * What a restored `set` does to the state under it: its patch again, when it went as one (so a
 * rebase on a newer state keeps what others changed meanwhile), else the state it saved.
 */
function restoredUpdate(entry: StateEntry): Updater<unknown> {
  const patch = entry.sentOn?.patch
  if (patch === undefined) return entry.state
  return (state: unknown) => {
    try {
      return applyPatch(state, patch)
    } catch {
      // The state moved where the patch no longer applies: the op's own result, as saved.
      return entry.state
    }
  }
}

/** How an op is named in messages: its store, or its action. */
export function opLabel(op: PendingOp): string {
  return op.kind === 'state' ? op.replica.cell.key : `action ${op.name}`
}

/** What a proposal says of its op besides the ids. */
export interface WireBody {
  baseVersion: number
  state: unknown
  epoch: string
  /** When the proposal went as a patch of the state at `baseVersion` (shorter than `state`). */
  patch?: Patch
}

/** What the replica knows of one store. */
export interface ReplicaStore {
  readonly cell: StoreCell<unknown>
  readonly policy: ConflictPolicy
  /** Its array paths whose items are identified by a key, compiled: what its proposals' patches address by id. */
  readonly ids: readonly IdPattern[]
  /** The latest authoritative version and state. */
  confirmed: StoreState
  /** Local ops not yet accepted, oldest first. */
  readonly pending: StateOp[]
  /** The declared initial state (`connect({ initial })`, `store(key, initial)`): what the store shows while the server has none. */
  initial: unknown
  /** Whether `confirmed` came from the server (and so can be handed to a new tab). */
  known: boolean
  /** Other tabs' pending results, by tab: shown under this tab's own ops until confirmed or stale. */
  readonly foreign: Map<string, { baseVersion: number; state: unknown; arrival: number }>
  /** What this tab last told the others of its pending ops here. */
  announced: { baseVersion: number; state: unknown } | undefined
  /** The version of the latest deletion of the store this replica learned of, in the current epoch. */
  deletedAt?: number | undefined
}

/** An op whose ids changed, with the ids it had (its outbox entry is under those). */
export interface Renumbered {
  readonly op: PendingOp
  /** Its ids before. */
  readonly was: { readonly clientId: string; readonly opId: number }
}

/**
 * Every pending op of every store, in the order they were issued: they are proposed in this order,
 * one at a time. It also issues the ids: this replica's client id and the last opId it gave.
 */
export class PendingQueue {
  readonly #ops: PendingOp[] = []
  #identity: { clientId: string; opId: number }
  /** How many of the ops are actions: while there is none, each store's view is its own ops over its confirmed state. */
  #actions = 0

  constructor(clientId: string) {
    this.#identity = { clientId, opId: 0 }
  }

  /** The client id new ops are queued under. */
  get clientId(): string {
    return this.#identity.clientId
  }

  /** The oldest op: the next to propose. */
  get head(): PendingOp | undefined {
    return this.#ops[0]
  }

  get length(): number {
    return this.#ops.length
  }

  /** Whether an action is queued: then what stores show is the whole queue replayed in order ({@link replayAll}). */
  get hasActions(): boolean {
    return this.#actions > 0
  }

  /** Every op, oldest first. */
  get ops(): readonly PendingOp[] {
    return this.#ops
  }

  /** Queues a new `set` under the next id, last in line of its store and of the replica. */
  enqueue(replica: ReplicaStore, update: Updater<unknown>, queuedAt: number, resolve: (version: number) => void, reject: (error: ZunoError) => void): StateOp {
    const op: StateOp = {
      kind: 'state',
      replica,
      clientId: this.#identity.clientId,
      opId: ++this.#identity.opId,
      queuedAt,
      update,
      resolve,
      reject,
      computed: false,
      basedOn: undefined,
      result: undefined,
      sent: undefined,
      conflicts: 0,
      failures: 0,
      failure: undefined,
      lastSent: undefined,
      doubtedIn: undefined,
      madeOn: replica.confirmed.version,
    }
    replica.pending.push(op)
    this.#ops.push(op)
    return op
  }

  /** Queues a new action under the next id, last in line. */
  enqueueAction(action: Pick<ActionOp, 'name' | 'args' | 'localArgs' | 'run' | 'queuedAt' | 'resolve' | 'reject'>): ActionOp {
    const op: ActionOp = {
      ...action,
      kind: 'action',
      clientId: this.#identity.clientId,
      opId: ++this.#identity.opId,
      seen: undefined,
      writes: new Map(),
      failures: 0,
      lastSent: undefined,
      doubtedIn: undefined,
    }
    this.#ops.push(op)
    this.#actions += 1
    return op
  }

  /** Takes the op (the oldest of the replica, and so of its store) out of the queues. */
  dequeue(op: PendingOp): void {
    if (this.#ops[0] === op) this.#ops.shift()
    else this.#ops.splice(this.#ops.indexOf(op), 1)
    if (op.kind === 'action') {
      this.#actions -= 1
      return
    }
    const pending = op.replica.pending
    if (pending[0] === op) pending.shift()
    else pending.splice(pending.indexOf(op), 1)
  }

  /**
   * The server did not record the dropped op's id: the ops after it of the same client move down
   * one id, so the ids the server sees stay contiguous.
   */
  freeId(dropped: PendingOp): Renumbered[] {
    const moved: Renumbered[] = []
    for (const op of this.#ops) {
      if (op.clientId !== dropped.clientId || op.opId < dropped.opId) continue
      moved.push({ op, was: { clientId: op.clientId, opId: op.opId } })
      op.opId -= 1
    }
    if (this.#identity.clientId === dropped.clientId) this.#identity.opId -= 1
    return moved
  }

  /** Every op goes on, in order, under a fresh identity (`clientId`) and new ids; nothing of it was sent under that one. */
  renumberAs(clientId: string): Renumbered[] {
    this.#identity = { clientId, opId: 0 }
    return this.#ops.map((op) => {
      const was = { clientId: op.clientId, opId: op.opId }
      op.clientId = clientId
      op.opId = ++this.#identity.opId
      op.lastSent = undefined
      op.doubtedIn = undefined
      return { op, was }
    })
  }

  /**
   * Puts ops queued before a reload first in line under their original ids: a `set` as the plain
   * value it last produced, an action as it was called (run here as `localOf` says). One whose
   * entry says it was sent may have been applied: it counts as in doubt.
   */
  restore(
    entries: readonly OutboxEntry[],
    replicaOf: (storeKey: string) => ReplicaStore,
    localOf: (action: string, args: unknown) => Pick<ActionOp, 'run' | 'localArgs'>,
  ): PendingOp[] {
    // Nobody awaits these any more; a refusal still reaches onError and lastError.
    const settled = { resolve: () => {}, reject: () => {} }
    const restored = entries.map((entry): PendingOp => {
      const common = { clientId: entry.clientId, opId: entry.opId, queuedAt: entry.queuedAt, failures: 0, doubtedIn: entry.sentOn?.epoch, ...settled }
      if ('action' in entry) {
        const lastSent = entry.sentOn === undefined ? undefined : { epoch: entry.sentOn.epoch, ...(entry.sentOn.at === undefined ? {} : { at: entry.sentOn.at }) }
        const local = localOf(entry.action, entry.args)
        return { ...common, ...local, kind: 'action', name: entry.action, args: entry.args, seen: undefined, writes: new Map(), lastSent }
      }
      return {
        ...common,
        kind: 'state',
        replica: replicaOf(entry.storeKey),
        update: restoredUpdate(entry),
        computed: false,
        basedOn: undefined,
        result: undefined,
        sent: entry.state,
        conflicts: 0,
        failure: undefined,
        lastSent: entry.sentOn === undefined ? undefined : { ...entry.sentOn, state: entry.state },
        ...(entry.madeOn === undefined ? {} : { madeOn: entry.madeOn.version, madeIn: entry.madeOn.epoch }),
      }
    })
    this.#ops.unshift(...restored)
    for (const op of [...restored].reverse()) {
      if (op.kind === 'state') op.replica.pending.unshift(op)
      else this.#actions += 1
    }
    return restored
  }

  /** Empties the client-wide queue and returns what it held (the per-store lists are the caller's to drain). */
  clear(): PendingOp[] {
    this.#actions = 0
    return this.#ops.splice(0)
  }
}

/**
 * The pending ops replayed over the confirmed state, as this tab computes them; an op is
 * recomputed only when its input changed.
 */
export function replay(replica: ReplicaStore): unknown {
  let state = replica.confirmed.state
  for (const op of replica.pending) state = replayStateOp(op, state)
  return state
}

/**
 * Every op of the queue replayed in order over the confirmed states: what each store an op writes
 * shows (the stores no op writes show their confirmed state). A `set` is recomputed as in
 * {@link replay}; an action runs again when a store it read shows another state than when it last
 * ran, so one that reads store A and writes store B follows A.
 */
export function replayAll(ops: readonly PendingOp[], replicaOf: (storeKey: string) => ReplicaStore): Map<ReplicaStore, unknown> {
  const views = new Map<ReplicaStore, unknown>()
  const viewOf = (replica: ReplicaStore): unknown => (views.has(replica) ? views.get(replica) : replica.confirmed.state)
  for (const op of ops) {
    if (op.kind === 'state') {
      views.set(op.replica, replayStateOp(op, viewOf(op.replica)))
      continue
    }
    if (op.run === undefined) continue
    const { echoed } = op
    if (echoed === undefined && (op.seen === undefined || [...op.seen].some(([replica, state]) => viewOf(replica) !== state))) runLocally(op, op.run, viewOf, replicaOf)
    // Half landed: the stores its event confirmed show the server's state; the others, what it wrote, until the answer.
    for (const [replica, state] of op.writes) if (echoed === undefined || !echoed.has(replica)) views.set(replica, state)
  }
  return views
}

/** The op's result on `state`, recomputed only when `state` is not the one it was computed on. */
function replayStateOp(op: StateOp, state: unknown): unknown {
  if (op.failure === undefined && (!op.computed || op.basedOn !== state)) {
    const { replica } = op
    const { policy } = replica
    try {
      op.result =
        op.computed && typeof policy === 'object'
          ? policy.merge({ base: op.basedOn, mine: op.result, theirs: state })
          : applyUpdater(op.update, state)
    } catch (error) {
      // A throwing updater changes nothing; the op rejects when its turn comes (see the pump).
      op.failure = new ZunoError('update_failed', `The update of ${replica.cell.key} threw`, { cause: error })
      op.result = state
    }
    op.basedOn = state
    op.computed = true
  }
  return op.result
}

/**
 * Runs the action on what the stores show before it and keeps what it read and wrote. A run that
 * throws (or refuses) shows nothing: the server decides, so the op is sent all the same.
 */
function runLocally(op: ActionOp, run: NonNullable<ActionOp['run']>, viewOf: (replica: ReplicaStore) => unknown, replicaOf: (storeKey: string) => ReplicaStore): void {
  const seen = new Map<ReplicaStore, unknown>()
  const read = (key: string): StoreRead => {
    const replica = replicaOf(key)
    const state = viewOf(replica)
    seen.set(replica, state)
    return { version: replica.confirmed.version, state }
  }
  op.seen = seen
  op.writes = new Map()
  try {
    const effect = runAction(run, op.localArgs, read, undefined, (key) => replicaOf(key).initial)
    if (effect instanceof Promise) {
      // An async run cannot be shown at once; the server runs it for real.
      effect.catch(() => {})
      return
    }
    for (const [key, state] of effect.writes) op.writes.set(replicaOf(key), shownAs(replicaOf(key), state))
  } catch {
    // No optimistic effect; the server's answer settles the op.
  }
}

/** What a store an action wrote shows: the state written, or its initial state when the action deleted it. */
function shownAs(replica: ReplicaStore, written: unknown): unknown {
  return written === DELETED ? replica.initial : written
}

/**
 * What to show: this tab's ops replayed over the latest pending result of another tab, if one
 * is still based on the current version; otherwise `own`, computed on the confirmed state.
 * (Proposals always use `own`: another tab's ops are that tab's to propose.)
 */
export function withOtherTabs(replica: ReplicaStore, own: unknown): unknown {
  const latest = latestOfOtherTabs(replica)
  if (latest === undefined) return own
  let state = latest.state
  for (const op of replica.pending) {
    try {
      state = applyUpdater(op.update, state)
    } catch {
      // Shown as if the op were not there; its own rejection comes from the confirmed chain.
    }
  }
  return state
}

/** The latest pending result another tab announced for the store, if one is still based on its current version (older ones are dropped). */
export function latestOfOtherTabs(replica: ReplicaStore): { state: unknown } | undefined {
  if (replica.foreign.size === 0) return undefined
  let latest: { state: unknown; arrival: number } | undefined
  for (const [tab, theirs] of replica.foreign) {
    if (theirs.baseVersion < replica.confirmed.version) replica.foreign.delete(tab)
    else if (latest === undefined || theirs.arrival > latest.arrival) latest = theirs
  }
  return latest
}

/**
 * {@link withOtherTabs} for a queue with actions: every op of this tab replayed in order over the
 * other tabs' latest results (`theirs`, by store; the confirmed state elsewhere), each computed
 * afresh. For display only: proposals and this tab's own announcements use {@link replayAll}'s.
 */
export function replayOverOtherTabs(ops: readonly PendingOp[], theirs: ReadonlyMap<ReplicaStore, unknown>, replicaOf: (storeKey: string) => ReplicaStore): Map<ReplicaStore, unknown> {
  const views = new Map(theirs)
  const viewOf = (replica: ReplicaStore): unknown => (views.has(replica) ? views.get(replica) : replica.confirmed.state)
  for (const op of ops) {
    try {
      if (op.kind === 'state') {
        views.set(op.replica, applyUpdater(op.update, viewOf(op.replica)))
        continue
      }
      if (op.run === undefined) continue
      const effect = runAction(
        op.run,
        op.localArgs,
        (key) => {
          const replica = replicaOf(key)
          return { version: replica.confirmed.version, state: viewOf(replica) }
        },
        undefined,
        (key) => replicaOf(key).initial,
      )
      if (effect instanceof Promise) effect.catch(() => {})
      else for (const [key, state] of effect.writes) views.set(replicaOf(key), shownAs(replicaOf(key), state))
    } catch {
      // Shown as if the op were not there, as in withOtherTabs.
    }
  }
  return views
}
