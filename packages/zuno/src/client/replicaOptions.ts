/** What a replica is given (`connect(options)`) and the small public types its API speaks. */
import type { ActionSpec } from '../action'
import type { ZunoError } from '../errors'
import type { IdPaths } from '../patch'
import type { StateResponse, StoreState } from '../protocol'
import type { Schemas } from '../schema'
import type { SpecOf } from '../storeSpecs'
import type { EventSourceConstructor, Timers } from './connection'
import type { Outbox } from './outbox'
import type { DigestLike } from './writerTags'
import type { ConflictPolicy } from './pendingQueue'
import type { BroadcastChannelConstructor, LockManagerLike } from './tabs'

export type { ConflictPolicy, MergeInput } from './pendingQueue'

/** A value that can be read and watched. */
export interface ReadableValue<T> {
  /** The value now. */
  get(): T
  /** Calls `listener` with each new value (not the current one); returns the unsubscribe. */
  subscribe(listener: (value: T) => void): () => void
}

/** Told each time the server answers a proposal with 409. */
export interface ConflictInfo {
  /** The store the op writes. */
  storeKey: string
  /** The op's number, as its `set` promise will settle it. */
  opId: number
  /** How many times this op has now been refused. */
  conflicts: number
  /** The server's current state. */
  theirs: StoreState
}

/** Which op {@link ReplicaOptions.onError} is told of: a `set` of a store, or an action. */
export type RefusedOp =
  | {
      /** The store the `set` wrote. */
      storeKey: string
      /** The op's number. */
      opId: number
    }
  | {
      /** The action's name. */
      action: string
      /** The op's number. */
      opId: number
    }

/** Options of {@link connect}. */
export interface ReplicaOptions<S extends Schemas = Schemas> {
  /** Where the server mounted Zuno, such as `/zuno` or `http://127.0.0.1:3000/zuno`. */
  url: string
  /**
   * The initial state of each store, declared once for the whole app: what a store shows until the
   * server's state (or an op) says otherwise, and what it starts over from on a new epoch when the
   * server does not have it. `store(key, initial)` may declare one too; another value for the same
   * store throws `initial_mismatch`. Default: none, so an unknown store shows `undefined`.
   */
  initial?: Partial<Record<string, unknown>>
  /**
   * The app's declarations, families included (`connect({ app })` passes them): what a key that
   * `initial`, `schemas` and `ids` do not name resolves to.
   * @internal
   */
  specs?: SpecOf
  /**
   * Follow only these stores, and those `follow(key)` adds at runtime (pass `[]` to
   * follow only those). Default: every store the server streams.
   */
  stores?: readonly string[]
  /** How long a store stays followed after its last `follow()` is released, ms. Default 5,000. */
  followGraceMs?: number
  /**
   * Start from states the server rendered with (`GET /state`, or `dehydrate()` on the server): the
   * stores show them at once and the stream continues from their `cursor`, with no gap and no overlap.
   * Default: none; the first render waits for the stream's snapshot.
   */
  hydrate?: StateResponse
  /**
   * Per-store Standard Schemas: an op whose state does not match is refused here, with the issues
   * (`invalid_state`), before it is proposed; `store(key)` is typed from them. Default: none; the
   * server still validates with its own.
   */
  schemas?: S
  /**
   * Per store, the array paths whose items are identified by a key (see `IdPaths`): proposals
   * and merges address those items by id. With `app`, each store's `ids` from its definition.
   * Default: none.
   */
  ids?: Record<string, IdPaths>
  /** One policy for every store, or one per store key (others rebase). Default `rebase`. */
  conflictPolicy?: ConflictPolicy | Record<string, ConflictPolicy>
  /** How many times an op is proposed before a conflict rejects it. Default 10. */
  maxAttempts?: number
  /** Most ops waiting at once, over all stores; past it `set` rejects with `queue_full`. Default 1,000. */
  maxPendingOps?: number
  /** Called on every 409, for metrics or a hint in the UI; the policy has already decided what happens. Default: none. */
  onConflict?: (info: ConflictInfo) => void
  /**
   * Keep queued ops across reloads (opt in; `createIndexedDbOutbox()` in browsers). After a reload
   * each op is proposed again under its original ids: a `set` as the state it last produced, an
   * action as it was called. Default: none;
   * ops pending at a reload are lost.
   */
  outbox?: Outbox
  /**
   * Called when an op is finally refused (its promise rejects with the same error): one place to
   * report refusals of `set` and `act` calls nobody awaits. Default: none.
   */
  onError?: (error: ZunoError, op: RefusedOp) => void
  /**
   * The app's actions (`connect({ app })` passes them): `act(name)` checks the arguments with the
   * action's schema and shows its effect at once. Default: none; every action is sent as it is
   * called, with no effect shown until the server's answer.
   */
  actions?: Readonly<Record<string, ActionSpec>>
  /**
   * Share one stream between the tabs of a browser that follow the same `stores`: the leader tab
   * holds it and relays to the others, and every tab shows the others' pending ops. Tabs with
   * another filter share among themselves, on a stream of their own. Default: on where there is a `window`.
   */
  tabs?: boolean
  /** Keeps two users of one browser apart: tabs share only with tabs of the same principal. Default: none (every tab shares). */
  principal?: string
  /** Default: the global `BroadcastChannel`. */
  BroadcastChannel?: BroadcastChannelConstructor
  /**
   * Web Locks, default `navigator.locks`: they elect the leader tab and keep an open tab's outbox
   * entries its own. Without them every tab holds its own stream, and the outbox assumes one tab.
   */
  locks?: LockManagerLike
  /**
   * A short-lived credential for the server's `authenticate`, read at every request: proposals send
   * it as `Authorization: Bearer …`, streams as `?token=…` (EventSource cannot send headers).
   * Cookies need nothing: same-origin requests carry them. Default: none.
   */
  token?: () => string | undefined
  /** Default: the global `fetch`. */
  fetch?: typeof fetch
  /** Default: the global `EventSource` (on Node.js 20, pass the `eventsource` package's). */
  EventSource?: EventSourceConstructor
  /** Send cookies with cross-origin SSE requests. Default false. */
  withCredentials?: boolean
  /** Default: the global timers. */
  timers?: Timers
  /** Source of jitter, in [0, 1). Default `Math.random`. */
  random?: () => number
  /** The clock, in ms since the epoch: when an op was queued (restored ops replay in this order). Default `Date.now`. */
  now?: () => number
  /** Makes this replica's client ids: the first, and a fresh one after `unknown_client`. Default `newClientId`. */
  newId?: () => string
  /**
   * Computes the SHA-256 digests of this replica's client ids (their writer tags, by which it knows
   * its own ops on the stream). Default `crypto.subtle`; where there is none (a page on plain http
   * from a host other than localhost), or with `null`, Zuno's own SHA-256 is loaded when first needed,
   * as it is when a digest fails, is not 32 bytes, or takes more than 2 s.
   */
  subtle?: DigestLike | null
}
