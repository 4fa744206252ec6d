/** A new value, or a function from the current value to the new one. */
export type Updater<T> = T | ((previous: T) => T)

/** Called after a store's state or version changed. */
export type Listener<T> = (state: T, previous: T) => void

/**
 * A keyed, versioned, observable unit of state.
 *
 * `get()` returns the same object until the state changes, so it can be handed to
 * `useSyncExternalStore` as it is.
 */
export interface Store<T> {
  /** The store's key in its universe. */
  readonly key: string
  /** Number of accepted updates so far; 0 for a store nobody has written yet. */
  readonly version: number
  /** The current state. */
  get(): T
  /**
   * Changes the state. On a replica the change shows at once and the promise settles when the
   * server has accepted it (with the committed version) or finally refused it (with a `ZunoError`).
   * Updater functions may run more than once (after a conflict) and must be pure.
   */
  set(next: Updater<T>): Promise<number>
  /** Calls `listener` after every change; returns the function that stops it. */
  subscribe(listener: Listener<T>): () => void
}

/** Applies an updater to a value. */
export function applyUpdater<T>(next: Updater<T>, previous: T): T {
  return typeof next === 'function' ? (next as (previous: T) => T)(previous) : next
}

/** Decides what `set` does; the universe that owns the store provides it. */
export type StoreWriter = (store: StoreCell<unknown>, next: Updater<unknown>) => Promise<number>

/** A store's new state and version, as {@link StoreCell.publishTogether} shows it. */
export interface PublishedState {
  /** The store. */
  readonly cell: StoreCell<unknown>
  /** Its new state. */
  readonly state: unknown
  /** Its new version. */
  readonly version: number
}

/** The store implementation shared by both roles; only the writer differs. */
export class StoreCell<T> implements Store<T> {
  #state: T
  #version: number
  readonly #listeners = new Set<Listener<T>>()
  readonly #write: StoreWriter
  /** Inside `deferNotifications`: publish changes the state and leaves telling to later. */
  #deferring = false
  #deferredFrom: { state: T } | undefined

  constructor(
    readonly key: string,
    state: T,
    version: number,
    write: StoreWriter,
  ) {
    this.#state = state
    this.#version = version
    this.#write = write
  }

  get version(): number {
    return this.#version
  }

  get(): T {
    return this.#state
  }

  set(next: Updater<T>): Promise<number> {
    return this.#write(this as StoreCell<unknown>, next as Updater<unknown>)
  }

  subscribe(listener: Listener<T>): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** Shows a new state and version to the store's listeners. Internal to the owning universe. */
  publish(state: T, version: number): void {
    const previous = this.#state
    if (previous === state && this.#version === version) return
    this.#state = state
    this.#version = version
    if (this.#deferring) {
      this.#deferredFrom ??= { state: previous }
      return
    }
    this.#notify(state, previous)
  }

  /**
   * Shows new states in several stores as one change: every state is readable before any listener
   * of any of them hears, so no listener sees half of it. Internal to the owning universe.
   */
  static publishTogether(changes: ReadonlyArray<PublishedState>): void {
    const toTell: Array<{ cell: StoreCell<unknown>; state: unknown; previous: unknown }> = []
    for (const { cell, state, version } of changes) {
      const previous = cell.#state
      if (previous === state && cell.#version === version) continue
      cell.#state = state
      cell.#version = version
      if (cell.#deferring) cell.#deferredFrom ??= { state: previous }
      else toTell.push({ cell, state, previous })
    }
    for (const { cell, state, previous } of toTell) cell.#notify(state, previous)
  }

  /**
   * Runs `change`, telling listeners of what it published on a microtask rather than during the
   * call: for a change made while a UI may be rendering (React forbids updating one component
   * while rendering another). The new state is readable at once.
   */
  deferNotifications(change: () => void): void {
    this.#deferring = true
    try {
      change()
    } finally {
      this.#deferring = false
    }
    const from = this.#deferredFrom
    if (from === undefined) return
    this.#deferredFrom = undefined
    queueMicrotask(() => this.#notify(this.#state, from.state))
  }

  #notify(state: T, previous: T): void {
    for (const listener of this.#listeners) {
      try {
        listener(state, previous)
      } catch (error) {
        // A faulty listener must not stop the others or the sync engine that called us;
        // rethrown on its own so it still surfaces where the host reports uncaught errors.
        queueMicrotask(() => {
          throw error
        })
      }
    }
  }
}
