/** An op waiting to be accepted, as kept across page reloads. */
export interface OutboxEntry {
  /** The client id it was proposed under; a retry after a reload keeps it, so it stays idempotent. */
  clientId: string
  opId: number
  storeKey: string
  /** What the op makes the store; after a reload it is proposed as this plain value. */
  state: unknown
  /** When it was queued (ms since the epoch); restored ops replay in this order. */
  queuedAt: number
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
}

const STORE = 'ops'

/** An {@link Outbox} in IndexedDB: one object store keyed by `[clientId, opId]`. */
export function createIndexedDbOutbox(options: IndexedDbOutboxOptions = {}): Outbox {
  const factory = options.indexedDB ?? globalThis.indexedDB
  if (factory === undefined) throw new TypeError('No indexedDB here: pass one as options.indexedDB')
  let database: Promise<IDBDatabase> | undefined

  const open = () => {
    database ??= new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open(options.name ?? 'zuno-outbox', 1)
      request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: ['clientId', 'opId'] })
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
