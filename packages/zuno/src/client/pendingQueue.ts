/**
 * The client-wide ordered queue of pending ops and the per-store lists, and the replay that
 * computes what a store shows from its confirmed state and its pending ops. Pure: no I/O, no timers.
 */
import { ZunoError } from '../errors'
import type { StoreState } from '../protocol'
import { applyUpdater, type StoreCell, type Updater } from '../store'
import type { OutboxEntry } from './outbox'

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

/** One `set` waiting to be accepted. */
export interface PendingOp {
  /** The store it writes. */
  readonly replica: ReplicaStore
  /** This replica's id, or the one of the session that queued the op before a reload; a fresh one after `unknown_client`. */
  clientId: string
  opId: number
  /** When `set` was called (ms since the epoch); restored ops replay in this order. */
  readonly queuedAt: number
  readonly update: Updater<unknown>
  readonly resolve: (version: number) => void
  readonly reject: (error: ZunoError) => void
  /** Whether `result` has been computed, on which state, and what it is. */
  computed: boolean
  basedOn: unknown
  result: unknown
  /** The state of the proposal last sent: after acceptance, the store's state. */
  sent: unknown
  /** Proposals answered 409 so far. */
  conflicts: number
  /** Deliveries that failed in a row (network, 5xx), for backoff. */
  failures: number
  /** Set when the updater threw: the op is not proposed (again) and rejects with this. */
  failure: ZunoError | undefined
  /** The body of the attempt on the wire, or of the last one, until an answer shows it was not applied. */
  lastSent: WireBody | undefined
  /**
   * The epoch of an attempt that got no definitive answer (the network failed, a 5xx, a reload
   * mid-request): it may have been applied there. Until an answer settles that, the op goes again
   * with `lastSent`'s base and state, so the server can recognise it.
   */
  doubtedIn: string | undefined
}

/** What a proposal says of its op besides the ids. */
export interface WireBody {
  baseVersion: number
  state: unknown
  epoch: string
}

/** What the replica knows of one store. */
export interface ReplicaStore {
  readonly cell: StoreCell<unknown>
  readonly policy: ConflictPolicy
  /** The latest authoritative version and state. */
  confirmed: StoreState
  /** Local ops not yet accepted, oldest first. */
  readonly pending: PendingOp[]
  /** The declared initial state (`connect({ initial })`, `store(key, initial)`): what the store shows while the server has none. */
  initial: unknown
  /** Whether `confirmed` came from the server (and so can be handed to a new tab). */
  known: boolean
  /** Other tabs' pending results, by tab: shown under this tab's own ops until confirmed or stale. */
  readonly foreign: Map<string, { baseVersion: number; state: unknown; arrival: number }>
  /** What this tab last told the others of its pending ops here. */
  announced: { baseVersion: number; state: unknown } | undefined
}

/** An op whose ids changed, with the ids it had (its outbox entry is under those). */
export interface Renumbered {
  readonly op: PendingOp
  readonly was: { readonly clientId: string; readonly opId: number }
}

/**
 * Every pending op of every store, in the order they were issued: they are proposed in this order,
 * one at a time. It also issues the ids: this replica's client id and the last opId it gave.
 */
export class PendingQueue {
  readonly #ops: PendingOp[] = []
  #identity: { clientId: string; opId: number }

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

  /** Queues a new op under the next id, last in line of its store and of the replica. */
  enqueue(replica: ReplicaStore, update: Updater<unknown>, queuedAt: number, resolve: (version: number) => void, reject: (error: ZunoError) => void): PendingOp {
    const op: PendingOp = {
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
    }
    replica.pending.push(op)
    this.#ops.push(op)
    return op
  }

  /** Takes the op (the oldest of the replica, and so of its store) out of both queues. */
  dequeue(op: PendingOp): void {
    if (this.#ops[0] === op) this.#ops.shift()
    else this.#ops.splice(this.#ops.indexOf(op), 1)
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
   * Puts ops queued before a reload first in line, as plain values under their original ids. One
   * whose entry says it was sent may have been applied: it counts as in doubt.
   */
  restore(entries: readonly OutboxEntry[], replicaOf: (storeKey: string) => ReplicaStore): PendingOp[] {
    const restored = entries.map((entry): PendingOp => ({
      replica: replicaOf(entry.storeKey),
      clientId: entry.clientId,
      opId: entry.opId,
      queuedAt: entry.queuedAt,
      update: entry.state,
      // Nobody awaits these any more; a refusal still reaches onError and lastError.
      resolve: () => {},
      reject: () => {},
      computed: false,
      basedOn: undefined,
      result: undefined,
      sent: entry.state,
      conflicts: 0,
      failures: 0,
      failure: undefined,
      lastSent: entry.sentOn === undefined ? undefined : { ...entry.sentOn, state: entry.state },
      doubtedIn: entry.sentOn?.epoch,
    }))
    this.#ops.unshift(...restored)
    for (const op of [...restored].reverse()) op.replica.pending.unshift(op)
    return restored
  }

  /** Empties the client-wide queue (the per-store lists are the caller's to drain). */
  clear(): void {
    this.#ops.length = 0
  }
}

/**
 * The pending ops replayed over the confirmed state, as this tab computes them; an op is
 * recomputed only when its input changed.
 */
export function replay(replica: ReplicaStore): unknown {
  let state = replica.confirmed.state
  for (const op of replica.pending) {
    if (op.failure === undefined && (!op.computed || op.basedOn !== state)) {
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
    state = op.result
  }
  return state
}

/**
 * What to show: this tab's ops replayed over the latest pending result of another tab, if one
 * is still based on the current version; otherwise `own`, computed on the confirmed state.
 * (Proposals always use `own`: another tab's ops are that tab's to propose.)
 */
export function withOtherTabs(replica: ReplicaStore, own: unknown): unknown {
  if (replica.foreign.size === 0) return own
  let latest: { state: unknown; arrival: number } | undefined
  for (const [tab, theirs] of replica.foreign) {
    if (theirs.baseVersion < replica.confirmed.version) replica.foreign.delete(tab)
    else if (latest === undefined || theirs.arrival > latest.arrival) latest = theirs
  }
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
