/**
 * `zuno-react`: React bindings: each hook is one `useSyncExternalStore` over a store of the universe a `ZunoProvider` gives; server renders hydrate without a flash.
 *
 * @module zuno-react
 */
import { useCallback, useRef, useState, useSyncExternalStore } from 'react'
import { useUniverse } from './universe'
import {
  type ActionArgs,
  type ActionsOfApp,
  type ConnectionStatus,
  type FirstRender,
  isZunoError,
  type ReadableValue,
  type StateResponse,
  type StatesOfApp,
  type Store,
  type Universe,
  type ZunoApp,
  ZunoError,
} from 'zuno'

/** A universe that reports sync status: a replica, or the snapshot universe of a server render. */
export type ObservedUniverse = Universe & {
  /** Read by {@link useConnectionStatus}. */
  readonly status: ReadableValue<ConnectionStatus>
  /** Read by {@link usePendingCount}. */
  readonly pending: ReadableValue<number>
  /** Read by {@link useLastError}. */
  readonly lastError: ReadableValue<ZunoError | undefined>
}

/** What hydration renders: a hydrated replica's (or a server render's) first render, when it has one. */
const firstRenderOf = (universe: Universe): FirstRender | undefined => (universe as { firstRender?: FirstRender }).firstRender

export { ZunoProvider, useUniverse } from './universe'
export { useBroadcast, useMyPresence, useOthers } from './presence'

/**
 * The store itself, for `set`. Stable across renders. `initial` declares the store's initial state
 * if nothing declared one before (`connect({ initial })` is the place that makes every first render
 * agree); another value than the declared one throws `initial_mismatch`.
 */
export function useStoreApi<T>(key: string, initial?: T): Store<T> {
  return useUniverse().store<T>(key, initial)
}

/**
 * The state of a store, or the part `select` picks (default: the whole state). It declares no
 * initial state, so it shows the same whether it runs before or after the hook that declares one.
 * Re-renders only when the selection changes by
 * `equal` (default `Object.is`), so a selector may return a new object as long as `equal` sees through it.
 */
export function useStore<T, S = T>(
  key: string,
  select: (state: T) => S = identity as (state: T) => S,
  equal: (a: S, b: S) => boolean = Object.is,
): S {
  const universe = useUniverse()
  const store = universe.store<T>(key)
  const memo = useRef<Selection<T, S> | undefined>(undefined)
  const firstMemo = useRef<Selection<T, S> | undefined>(undefined)
  const getSelection = () => selectCached(memo, store.get(), select, equal)
  // During hydration: the state the server rendered, not whatever has arrived since (it follows at once).
  const first = firstRenderOf(universe)
  const getFirstSelection = first === undefined ? getSelection : () => selectCached(firstMemo, first.store(key).state as T, select, equal)
  const subscribe = useCallback((onChange: () => void) => watch(universe, store, key, onChange), [universe, store, key])
  return useSyncExternalStore(subscribe, getSelection, getFirstSelection)
}

/**
 * Subscribes to a store and, on a replica that follows stores at runtime, follows it on the stream
 * while mounted: the replica stops following it `followGraceMs` after the last component using it unmounts.
 */
function watch(universe: Universe, store: { subscribe(listener: () => void): () => void }, key: string, onChange: () => void): () => void {
  const unsubscribe = store.subscribe(onChange)
  const unfollow = (universe as { follow?: (key: string) => () => void }).follow?.(key)
  return () => {
    unsubscribe()
    unfollow?.()
  }
}

interface Selection<T, S> {
  state: T
  select: (state: T) => S
  selected: S
}

/** `select(state)`, cached by state and selector so React's repeated calls agree and nothing loops. */
function selectCached<T, S>(memo: { current: Selection<T, S> | undefined }, state: T, select: (state: T) => S, equal: (a: S, b: S) => boolean): S {
  const last = memo.current
  if (last !== undefined && last.state === state && last.select === select) return last.selected
  const selected = select(state)
  // The same selection by `equal`: hand back the old object, so React sees no change and skips the render.
  const kept = last !== undefined && equal(last.selected, selected) ? last.selected : selected
  memo.current = { state, select, selected: kept }
  return kept
}

/** The version of a store: how many updates the server has accepted. */
export function useStoreVersion(key: string): number {
  const universe = useUniverse()
  const store = universe.store(key)
  const subscribe = useCallback((onChange: () => void) => watch(universe, store, key, onChange), [universe, store, key])
  const get = () => store.version
  const first = firstRenderOf(universe)
  return useSyncExternalStore(subscribe, get, first === undefined ? get : () => first.store(key).version)
}

/** A universe that runs actions: a replica (a server render's snapshot universe refuses them, `read_only`). */
interface ActingUniverse extends Universe {
  act(name: string, args?: unknown): Promise<void>
}

/** What {@link useAction} gives: the action to call, and how its calls from this component are doing. */
export interface ActionHandle<TArgs = unknown> {
  /** Runs the action; a refusal goes to `error` (and `onError`), never to an unhandled rejection. */
  run(...args: ActionArgs<TArgs>): void
  /** Runs the action; the promise settles once the server accepted it, or rejects with its refusal. */
  runAsync(...args: ActionArgs<TArgs>): Promise<void>
  /** Whether a call made through this handle is still waiting for the server. */
  pending: boolean
  /** The refusal of the last call that failed, until the next call starts. */
  error: ZunoError | undefined
}

/**
 * An action of the universe, for a component: `run` shows its effect at once (the replica runs it
 * optimistically) and `pending` and `error` follow its calls from here. `onError` hears each refusal.
 */
export function useAction<TArgs = unknown>(name: string, onError?: (error: ZunoError) => void): ActionHandle<TArgs> {
  const universe = useUniverse<ActingUniverse>()
  const [calls, setCalls] = useState({ pending: 0, error: undefined as ZunoError | undefined })
  const onErrorRef = useRef(onError)
  onErrorRef.current = onError
  // Stable across renders, so `run` can go in an effect's dependencies.
  const runAsync = useCallback(
    async (args?: unknown): Promise<void> => {
      setCalls((now) => ({ pending: now.pending + 1, error: undefined }))
      try {
        await universe.act(name, args)
        setCalls((now) => ({ ...now, pending: now.pending - 1 }))
      } catch (thrown) {
        const error = isZunoError(thrown) ? thrown : new ZunoError('update_failed', `The action ${JSON.stringify(name)} failed`, { cause: thrown })
        setCalls((now) => ({ pending: now.pending - 1, error }))
        onErrorRef.current?.(error)
        throw error
      }
    },
    [universe, name],
  )
  const run = useCallback((args?: unknown) => void runAsync(args).catch(() => {}), [runAsync])
  return { run, runAsync, pending: calls.pending > 0, error: calls.error } as unknown as ActionHandle<TArgs>
}

/** The store hooks typed from an app definition: only its keys, each with its state type. See {@link createZunoHooks}. */
export interface ZunoHooks<TStores extends Record<string, unknown>, TActions extends Record<string, unknown> = Record<string, never>> {
  /** {@link useAction}, typed: an action of the app, with its argument type. */
  useAction<K extends keyof TActions & string>(name: K, onError?: (error: ZunoError) => void): ActionHandle<TActions[K]>
  /** {@link useStore}, typed: the state of a store of the app, or the part `select` picks. */
  useStore<K extends keyof TStores & string>(key: K): TStores[K]
  /** {@link useStore}, typed: the part of a store of the app that `select` picks, compared by `equal`. */
  useStore<K extends keyof TStores & string, S>(key: K, select: (state: TStores[K]) => S, equal?: (a: S, b: S) => boolean): S
  /** {@link useStoreApi}, typed: the store itself, for `set`. Its initial state is the app's. */
  useStoreApi<K extends keyof TStores & string>(key: K): Store<TStores[K]>
  /** {@link useStoreVersion}, for a store of the app. */
  useStoreVersion(key: keyof TStores & string): number
}

/**
 * The store hooks, typed from the app definition that the server and `connect({ app })` read, so
 * `useStore('counter')` is a `number` with no cast and a key the app does not define is a type
 * error. The same hooks as the untyped ones (no runtime cost); make them once, next to the app:
 *
 * ```ts
 * export const { useStore, useStoreApi, useAction } = createZunoHooks<typeof app>()
 * ```
 */
export function createZunoHooks<
  // No actions required: any app's fit (an action's `run` takes its own arguments, so no wider action type would).
  TApp extends ZunoApp<Record<string, unknown>, Record<never, never>>,
>(): ZunoHooks<StatesOfApp<TApp>, ActionsOfApp<TApp>> {
  return { useStore, useStoreApi, useStoreVersion, useAction } as ZunoHooks<StatesOfApp<TApp>, ActionsOfApp<TApp>>
}

/** Equality of plain objects and arrays one level deep: for selectors that build a new object. */
export function shallowEqual<T>(a: T, b: T): boolean {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  const keysA = Object.keys(a)
  if (keysA.length !== Object.keys(b).length) return false
  return keysA.every((k) => Object.hasOwn(b, k) && Object.is((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/** The connection status: `connecting | connected | offline | error`. */
export function useConnectionStatus(): ConnectionStatus {
  return useObserved('status')
}

/** How many ops wait for the server. */
export function usePendingCount(): number {
  return useObserved('pending')
}

/** The last refused op or failed delivery. */
export function useLastError(): ZunoError | undefined {
  return useObserved('lastError')
}

/**
 * Safe JSON of a snapshot for an inline `<script>`: the server embeds it, the client passes it to
 * `connect({ hydrate })`.
 */
export function serializeState(state: StateResponse): string {
  return JSON.stringify(state).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

type Observed = Pick<FirstRender, 'status' | 'pending' | 'lastError'>

/** One of the universe's observed values; while hydrating, what the server rendered, if it rendered. */
function useObserved<K extends keyof Observed>(field: K): Observed[K] {
  const universe = useUniverse<ObservedUniverse>()
  const value = universe[field] as ReadableValue<Observed[K]>
  const first = firstRenderOf(universe)
  const subscribe = useCallback((onChange: () => void) => value.subscribe(onChange), [value])
  const get = () => value.get()
  return useSyncExternalStore(subscribe, get, first === undefined ? get : () => first[field])
}

const identity = <T>(value: T) => value
