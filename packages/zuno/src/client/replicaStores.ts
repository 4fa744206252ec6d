/** What the replica knows of each store it has seen: made on first use, with the store's conflict policy. */
import { compileIdPaths, type IdPaths } from '../patch'
import type { StoreState } from '../protocol'
import type { StoreCell } from '../store'
import type { SpecOf } from '../storeSpecs'
import type { ConflictPolicy, ReplicaStore } from './pendingQueue'

type Policies = ConflictPolicy | Record<string, ConflictPolicy> | undefined

export class ReplicaStores {
  readonly #stores = new Map<string, ReplicaStore>()
  readonly #cellOf: (key: string) => StoreCell<unknown>
  readonly #policies: Policies
  readonly #ids: Record<string, IdPaths> | undefined
  readonly #specs: SpecOf | undefined

  constructor(cellOf: (key: string) => StoreCell<unknown>, policies: Policies, ids: Record<string, IdPaths> | undefined, specs: SpecOf | undefined) {
    this.#cellOf = cellOf
    this.#policies = policies
    this.#ids = ids
    this.#specs = specs
  }

  /** The store's record, made from its cell the first time. */
  get(key: string): ReplicaStore {
    let replica = this.#stores.get(key)
    if (replica === undefined) {
      const cell = this.#cellOf(key)
      const policies = this.#policies
      const policy = isPolicy(policies) ? policies : policies?.[key]
      replica = {
        cell,
        policy: policy ?? 'rebase',
        // A family's ids are compiled once, for all its keys.
        ids: this.#ids !== undefined && Object.hasOwn(this.#ids, key) ? compileIdPaths(this.#ids[key]) : (this.#specs?.(key)?.ids ?? []),
        confirmed: { version: cell.version, state: cell.get() },
        pending: [],
        initial: cell.get(),
        known: false,
        foreign: new Map(),
        announced: undefined,
      }
      this.#stores.set(key, replica)
    }
    return replica
  }

  /** The store's record if it has one already. */
  find(key: string): ReplicaStore | undefined {
    return this.#stores.get(key)
  }

  entries(): IterableIterator<[string, ReplicaStore]> {
    return this.#stores.entries()
  }

  /** What this replica knows of the server's states: the leader's answer to a new tab. */
  known(): Record<string, StoreState> {
    const stores: Record<string, StoreState> = {}
    for (const [key, replica] of this.#stores) if (replica.known) stores[key] = replica.confirmed
    return stores
  }
}

/** The server said where the store stands. */
export function confirmFromServer(replica: ReplicaStore, confirmed: StoreState): void {
  // A deleted store shows its initial state, at the deletion's version: a write on it creates it again.
  replica.confirmed = confirmed.deleted ? { version: confirmed.version, state: replica.initial } : confirmed
  if (confirmed.deleted) replica.deletedAt = confirmed.version
  else if (confirmed.deletedAt !== undefined && (replica.deletedAt ?? -1) < confirmed.deletedAt) replica.deletedAt = confirmed.deletedAt
  replica.known = true
}

function isPolicy(value: Policies): value is ConflictPolicy {
  return value === 'rebase' || value === 'rollback' || typeof (value as { merge?: unknown })?.merge === 'function'
}
