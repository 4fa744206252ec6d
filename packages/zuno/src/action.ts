/**
 * Actions: named mutations defined once, run optimistically by a replica and for real by the
 * server, on a transaction over any stores. This module is the part both sides share: the
 * definition's types, the transaction and the run that records what an action read and wrote.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { ZunoError } from './errors'
import { applyUpdater, type Updater } from './store'

/**
 * What an action sees of the stores. Reads see the action's own earlier writes; the writes land
 * together, as one change, or not at all. The states read are the stores' own: treat them as
 * immutable and `set` a new value (on the server they are frozen).
 */
export interface Transaction<TStores extends Record<string, unknown> = Record<string, unknown>> {
  /** The store's state as the action sees it (its version 0 state when nobody wrote it yet). */
  get<K extends keyof TStores & string>(key: K): TStores[K]
  /** Writes the store: a value, or an updater of its state as the action sees it. */
  set<K extends keyof TStores & string>(key: K, next: Updater<TStores[K]>): void
  /**
   * Deletes the store, as one of the action's writes: every replica shows its initial state, and a
   * later write creates it again (its version goes on from the deletion's). Reads after it see the initial state.
   */
  delete<K extends keyof TStores & string>(key: K): void
}

/** What an action's effect holds for a store it deleted. */
export const DELETED: unique symbol = Symbol('zuno.deleted')

/** Who runs a server-side action, for rules that depend on the caller. */
export interface ActionContext {
  /** The authenticated principal (see the sync server's `authenticate`); `undefined` for anonymous callers and server code. */
  principal:
    | {
        /** The principal's id, as `authenticate` returned it. */
        id: string
      }
    | undefined
}

/**
 * One action of an app. `run` must be a pure function of the transaction and the arguments, like an
 * updater: a replica runs it again on the server's newer state until the server has run it.
 */
export interface ActionSpec<TStores extends Record<string, unknown> = Record<string, unknown>, TArgs = unknown> {
  /** Checks the arguments (on the client before it queues the action, on the server before it runs it). Without one the action takes no arguments: the server refuses any with `invalid_args`. */
  readonly args?: StandardSchemaV1<unknown, TArgs>
  /** The mutation. Throw {@link refuseAction} to refuse the intent (recorded, so a retry gets the same answer). */
  readonly run: (tx: Transaction<TStores>, args: TArgs) => void
}

/**
 * A server-only implementation of an action, given to `createUniverse({ actions })`: it replaces the
 * shared `run` on the server, so rules and secrets the client must not see stay there. It may be
 * async; a transaction that spans an await is run again if a store it used changed meanwhile.
 */
export type ServerAction<TStores extends Record<string, unknown> = Record<string, unknown>, TArgs = unknown> = (
  tx: Transaction<TStores>,
  args: TArgs,
  context: ActionContext,
) => void | Promise<void>

/** The arguments `act(name, …)` takes for an action: optional when it takes none. */
export type ActionArgs<TArgs> = undefined extends TArgs ? [args?: TArgs] : [args: TArgs]

/**
 * Refuses an action's intent from inside `run` ("stock may not go below zero"): the action writes
 * nothing and its caller's promise rejects with `action_refused` and this message. On the server the
 * refusal is recorded like an acceptance, so a retry of the op is told the same.
 */
export function refuseAction(message: string): never {
  throw new ZunoError('action_refused', message)
}

/** A store as a transaction first reached it. */
export interface StoreRead {
  /** The version; the action's outcome holds only while the store is still at it. */
  version: number
  /** The state at that version. */
  state: unknown
}

/** What running an action did. */
export interface ActionEffect {
  /** Each store the action reached, read or written, as it first found it. */
  readonly reached: Map<string, StoreRead>
  /** Each store the action wrote, in the order of its first write, with the last state written ({@link DELETED} for a deletion). */
  readonly writes: Map<string, unknown>
}

/**
 * Runs an action's `run` on a transaction over `read`, which gives a store's current version and
 * state (and may throw, for a store the caller cannot reach); `initialOf` gives what a store the
 * action deleted reads as afterwards. `allow`, if given, is asked before the
 * run sees a store's state or writes a store, and throws to stop it: a run must not learn what its
 * caller may not read, even from how it fails. Returns what the run did, or a promise of it when
 * `run` is async; a `run` that throws throws here.
 */
export function runAction<TArgs>(
  run: (tx: Transaction, args: TArgs) => void | Promise<void>,
  args: TArgs,
  read: (key: string) => StoreRead,
  allow?: (key: string, access: 'read' | 'write') => void,
  initialOf: (key: string) => unknown = () => undefined,
): ActionEffect | Promise<ActionEffect> {
  const effect: ActionEffect = { reached: new Map(), writes: new Map() }
  let open = true
  const reach = (key: string): StoreRead => {
    if (!open) throw new ZunoError('action_failed', 'An action used its transaction after it had finished')
    let found = effect.reached.get(key)
    if (found === undefined) effect.reached.set(key, (found = read(key)))
    return found
  }
  const look = (key: string): unknown => {
    allow?.(key, 'read')
    const found = reach(key)
    if (!effect.writes.has(key)) return found.state
    const written = effect.writes.get(key)
    return written === DELETED ? initialOf(key) : written
  }
  const tx: Transaction = {
    get: (key) => look(key),
    set: (key, next) => {
      allow?.(key, 'write')
      reach(key)
      effect.writes.set(key, typeof next === 'function' ? applyUpdater(next, look(key)) : next)
    },
    delete: (key) => {
      allow?.(key, 'write')
      reach(key)
      effect.writes.set(key, DELETED)
    },
  }
  const finish = (): ActionEffect => {
    open = false
    return effect
  }
  let result: void | Promise<void>
  try {
    result = run(tx, args)
  } catch (error) {
    open = false
    throw error
  }
  // Any thenable, not only a native promise: its effect is complete only once it settles.
  if (typeof (result as { then?: unknown } | undefined)?.then !== 'function') return finish()
  return Promise.resolve(result).then(finish, (error: unknown) => {
    open = false
    throw error
  })
}
