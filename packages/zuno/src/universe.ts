import { ZunoError } from './errors'
import { InitialStates } from './initialStates'
import { STORE_KEY_PATTERN } from './protocol'
import { type Store, StoreCell, type StoreWriter, type Updater } from './store'

/** An authoritative universe is the server's source of truth; replicas follow one. */
export type UniverseRole = 'authoritative' | 'replica'

/** Throws `invalid_store_key` unless `key` matches the protocol's store key pattern. */
export function assertStoreKey(key: string): void {
  if (!STORE_KEY_PATTERN.test(key)) {
    throw new ZunoError('invalid_store_key', `Invalid store key ${JSON.stringify(key)}`)
  }
}

/** A registry of stores; what `set` does depends on the role, so each role subclasses this. */
export abstract class Universe<TStores extends Record<string, unknown> = Record<string, unknown>, TOtherKey extends string = string> {
  /** Whether this universe is the source of truth or follows one. */
  abstract readonly role: UniverseRole
  readonly #stores = new Map<string, StoreCell<unknown>>()
  readonly #initials = new InitialStates()
  readonly #write: StoreWriter = (cell, next) => this.writeStore(cell, next)

  /** Carries out `store.set(next)` for a store of this universe. */
  protected abstract writeStore(cell: StoreCell<unknown>, next: Updater<unknown>): Promise<number>

  /**
   * The store under `key`, created on first use. `initial` is its state until the store has
   * been written (or, on a replica, until the server's state arrives). A store has one initial
   * state, declared by the first call that gives one, whichever it is (a call without `initial`
   * declares nothing); a call with another one throws `initial_mismatch`.
   */
  store<K extends keyof TStores & string>(key: K, initial?: TStores[K]): Store<TStores[K]>
  /** A store that `TStores` does not name: any key, except in a universe made from an app definition (`TOtherKey` is then `never`). */
  store<T>(key: TOtherKey, initial?: T): Store<T>
  // biome-ignore lint/suspicious/noExplicitAny: the overloads above give the caller its type
  store(key: string, initial?: unknown): Store<any> {
    this.storeOpened(key)
    return this.cell(key, initial)
  }

  /** Server code asked for a store through {@link store}: a universe that evicts stores keeps it. */
  protected storeOpened(_key: string): void {}

  /** True when a store with this key exists here. */
  has(key: string): boolean {
    return this.#stores.has(key)
  }

  /** Keys of every store that exists here. */
  keys(): string[] {
    return [...this.#stores.keys()]
  }

  /** The cell behind `store()`, for the universe's own machinery; an `initial` given declares the store's initial state. */
  protected cell(key: string, initial?: unknown): StoreCell<unknown> {
    let cell = this.#stores.get(key)
    if (cell === undefined) {
      assertStoreKey(key)
      if (initial === undefined) initial = this.initialOf(key)
      if (initial !== undefined) this.#initials.declare(key, initial)
      cell = new StoreCell<unknown>(key, initial, 0, this.#write)
      this.#stores.set(key, cell)
    } else if (initial !== undefined && this.#initials.declare(key, initial)) {
      // Often called while rendering (useStoreApi): components already showing the store hear of it just after.
      const existing = cell
      existing.deferNotifications(() => this.initialDeclared(existing, initial))
    }
    return cell
  }

  /** The initial state of a store asked for without one: its family's, in a universe made from an app that has families. */
  protected initialOf(_key: string): unknown {
    return undefined
  }

  /**
   * A store that exists already got its initial state declared only now (it was first asked for
   * without one). It shows it if it has no state of its own yet; a replica also starts over from it
   * on a new epoch.
   */
  protected initialDeclared(cell: StoreCell<unknown>, initial: unknown): void {
    if (cell.version === 0 && cell.get() === undefined) cell.publish(initial, 0)
  }

  /** Existing cells, for snapshots. */
  protected cells(): IterableIterator<StoreCell<unknown>> {
    return this.#stores.values()
  }

  /** Drops a store's cell (a universe on a storage read lazily evicts the stores it has not used lately). */
  protected forget(key: string): void {
    this.#stores.delete(key)
  }

  /** The existing cell under `key`, if any. */
  protected existing(key: string): StoreCell<unknown> | undefined {
    return this.#stores.get(key)
  }
}
