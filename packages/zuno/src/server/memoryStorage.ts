import { randomId } from '../id'
import type { CommitOutcome, Proposal, Storage, StorageImage } from './storage'
import { StoreTable } from './storeTable'

/** Options of {@link createMemoryStorage}. */
export interface MemoryStorageOptions {
  /** How many recent `(clientId, opId)` answers are kept for idempotent retries. Default 10,000. */
  idempotencyWindow?: number
}

/** Keeps everything in this process; a restart starts a new, empty epoch. */
export function createMemoryStorage(options: MemoryStorageOptions = {}): Storage {
  const epoch = randomId()
  const table = new StoreTable(options.idempotencyWindow ?? 10_000)
  let seq = 0

  return {
    async load(): Promise<StorageImage> {
      return { epoch, seq, stores: new Map(table.states) }
    },

    async commit(proposal: Proposal): Promise<CommitOutcome> {
      const refused = table.refuse(proposal)
      if (refused !== undefined) return refused
      seq += 1
      const event = table.accept(proposal, epoch, seq)
      table.commit(event)
      return { type: 'accepted', event }
    },

    onCommit: (listener) => table.onCommit(listener),

    async close() {
      table.close()
    },
  }
}
