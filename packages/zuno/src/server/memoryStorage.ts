import { randomId } from '../id'
import { writerTag } from '../writerTag'
import { ClientLedger, type ClientRecordOptions } from './clientLedger'
import { createLocalBus } from './signals'
import type { ActionCommitRequest, CommitOutcome, CommitRequest, RefusalRequest, Storage, StorageImage } from './storage'
import { copyStates, StoreTable } from './storeTable'

/** Options of {@link createMemoryStorage}. */
export interface MemoryStorageOptions extends ClientRecordOptions {
  /**
   * Be read lazily, store by store, as a database is (see `Storage.read`): the universe then keeps
   * only `hotStores` of them in memory beside those in use. For tests of an app's behaviour on such
   * a storage; the memory storage itself still holds every store. Default false.
   */
  lazy?: boolean
}

/** Keeps everything in this process; a restart starts a new, empty epoch. */
export function createMemoryStorage(options: MemoryStorageOptions = {}): Storage {
  const epoch = randomId()
  const table = new StoreTable(new ClientLedger(options))
  let seq = 0
  const lazy = options.lazy === true
  table.tellsExisted = lazy

  const storage: Storage = {
    async load(): Promise<StorageImage> {
      if (!lazy) return { epoch, seq, stores: copyStates(table.states) }
      let storeCount = 0
      for (const stored of table.states.values()) if (stored.deleted !== true) storeCount += 1
      return { epoch, seq, stores: new Map(), storeCount }
    },

    commit(request: CommitRequest): CommitOutcome {
      const refused = table.refuse(request, epoch)
      if (refused !== undefined) return refused
      seq += 1
      const event = table.accept(request, epoch, seq, writerTag(request.clientId))
      table.commit(event, request)
      return { type: 'accepted', event }
    },

    commitAction(request: ActionCommitRequest): CommitOutcome {
      const refused = table.refuseAction(request, epoch)
      if (refused !== undefined) return refused
      if (request.writes.length === 0) return table.recordUnchanged(request, seq)
      seq += 1
      const event = table.acceptAction(request, epoch, seq, writerTag(request.clientId))
      table.commit(event, request)
      return { type: 'accepted', event }
    },

    async refuse(request: RefusalRequest): Promise<CommitOutcome> {
      return table.decide(request, epoch) ?? table.recordRefusal(request)
    },

    onCommit: (listener) => table.onCommit(listener),

    // Universes sharing this storage object (two instances in one process) hear each other.
    bus: createLocalBus(),

    async close() {
      table.close()
    },
  }
  if (lazy) {
    storage.read = async (keys) => {
      const named = keys === undefined ? table.states : new Map(keys.flatMap((key) => { const stored = table.states.get(key); return stored === undefined ? [] : [[key, stored] as const] }))
      return { epoch, seq, stores: copyStates(named) }
    }
  }
  return storage
}
