import type { Patch } from '../patch'
import { newClientId } from '../id'

/** An op waiting to be accepted, as kept across page reloads: a `set` of one store, or an action. */
export type OutboxEntry = StateEntry | ActionEntry

/** What every entry has: the op's ids and when it was queued. */
interface EntryCommon {
  /** The client id it was proposed under; a retry after a reload keeps it, so it stays idempotent. */
  clientId: string
  /** The op's number under that client id. */
  opId: number
  /** When it was queued (ms since the epoch); restored ops replay in this order. */
  queuedAt: number
}

/** A `set` waiting to be accepted (the only kind before actions: entries of older sessions read as this). */
export interface StateEntry extends EntryCommon {
  /** The store the op writes. */
  storeKey: string
  /** What the op makes the store; after a reload it is proposed as this plain value. */
  state: unknown
  /**
   * The version the replica showed when `set` was called, and its epoch: a deletion past it,
   * learned after a reload, refuses the op rather than letting it bring the store back.
   */
  madeOn?: {
    /** The store's confirmed version when `set` was called. */
    version: number
    /** The epoch of that version. */
    epoch: string
  }
  /** Set while the op is in doubt (sent, never answered): the base and epoch it was sent on, so a retry sends it unchanged. */
  sentOn?: {
    /** The version the op was proposed on. */
    baseVersion: number
    /** The epoch of that version. */
    epoch: string
    /** When the op went as a patch of the state at `baseVersion`: the patch, so a retry sends the same body. */
    patch?: Patch
  }
}

/** An action waiting to be accepted: after a reload it is proposed again as it was called. */
export interface ActionEntry extends EntryCommon {
  /** The action's name. */
  action: string
  /** Its arguments, if it was given any. */
  args?: unknown
  /** Set while the op is in doubt (sent, never answered): the epoch it was sent in. */
  sentOn?: {
    /** The epoch of the attempt. */
    epoch: string
    /** When it was first sent (ms since the epoch), if known: a resend says how long ago. */
    at?: number
  }
}

/**
 * Where a replica keeps the ops it has not had accepted yet, so that they survive a reload.
 * Opt in with `connect({ outbox })`; {@link createIndexedDbOutbox} is the browser's.
 */
export interface Outbox {
  /** Every entry, in any order. */
  load(): Promise<OutboxEntry[]>
  /** Stores or replaces the entry for `(clientId, opId)`. */
  put(entry: OutboxEntry): Promise<void>
  /** Forgets an entry once its op is accepted or refused. */
  delete(clientId: string, opId: number): Promise<void>
}

/** Options of {@link createIndexedDbOutbox}. */
export interface IndexedDbOutboxOptions {
  /** Database name; use one per app (and per user, if several share a browser). Default `zuno-outbox`. */
  name?: string
  /** Default: the global `indexedDB`. */
  indexedDB?: IDBFactory
  /** Makes the client id that ops from an older format move to. Default `newClientId`. */
  newId?: () => string
}

const STORE = 'ops'
/** The outbox's format, as the IndexedDB version: 2 since protocol v2's client ids. */
const FORMAT = 2

/** An {@link Outbox} in IndexedDB: one object store keyed by `[clientId, opId]`. */
export function createIndexedDbOutbox(options: IndexedDbOutboxOptions = {}): Outbox {
  const factory = options.indexedDB ?? globalThis.indexedDB
  if (factory === undefined) throw new TypeError('No indexedDB here: pass one as options.indexedDB')
  let database: Promise<IDBDatabase> | undefined

  const open = () => {
    database ??= new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open(options.name ?? 'zuno-outbox', FORMAT)
      request.onupgradeneeded = (event) => {
        if (event.oldVersion === 0) request.result.createObjectStore(STORE, { keyPath: ['clientId', 'opId'] })
        else migrateFromV1(request.transaction?.objectStore(STORE), options.newId ?? newClientId)
      }
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => reject(request.error)
    })
    return database
  }

  const run = async <T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const transaction = (await open()).transaction(STORE, mode)
    const request = work(transaction.objectStore(STORE))
    return new Promise<T>((resolve, reject) => {
      // Resolve on commit, not on the request: only then is the write durable.
      transaction.oncomplete = () => resolve(request.result)
      transaction.onerror = () => reject(transaction.error)
      transaction.onabort = () => reject(transaction.error)
    })
  }

  return {
    load: () => run('readonly', (store) => store.getAll() as IDBRequest<OutboxEntry[]>),
    put: async (entry) => {
      await run('readwrite', (store) => store.put(entry))
    },
    delete: async (clientId, opId) => {
      await run('readwrite', (store) => store.delete([clientId, opId]))
    },
  }
}

/**
 * Format 1 named ops by client ids that protocol v2 refuses. Its ops move, in their order, to one
 * fresh client whose opIds start at 1: the server has never seen that client, so none can be a duplicate.
 */
function migrateFromV1(store: IDBObjectStore | undefined, newId: () => string): void {
  if (store === undefined) return
  // Format 1 had no actions: every entry is a `set`.
  const request = store.getAll() as IDBRequest<StateEntry[]>
  request.onsuccess = () => {
    const clientId = newId()
    const entries = request.result.sort((a, b) => a.queuedAt - b.queuedAt || a.opId - b.opId)
    store.clear()
    entries.forEach((entry, index) => store.put({ clientId, opId: index + 1, storeKey: entry.storeKey, state: entry.state, queuedAt: entry.queuedAt }))
  }
}
