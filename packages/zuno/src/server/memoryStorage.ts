import { formatEventId, type StoreState } from '../protocol'
import { randomId } from '../id'
import type { CommitOutcome, CommittedEvent, Proposal, Storage, StorageImage } from './storage'

/** Options of {@link createMemoryStorage}. */
export interface MemoryStorageOptions {
  /** How many recent `(clientId, opId)` answers are kept for idempotent retries. Default 10,000. */
  idempotencyWindow?: number
}

/** Keeps everything in this process; a restart starts a new, empty epoch. */
export function createMemoryStorage(options: MemoryStorageOptions = {}): Storage {
  const window = options.idempotencyWindow ?? 10_000
  const epoch = randomId()
  const stores = new Map<string, StoreState>()
  const answers = new Map<string, StoreState>()
  const listeners = new Set<(event: CommittedEvent) => void>()
  let seq = 0

  return {
    async load(): Promise<StorageImage> {
      return { epoch, seq, stores: new Map(stores) }
    },

    async commit(proposal: Proposal): Promise<CommitOutcome> {
      const opKey = `${proposal.clientId}\u0000${proposal.opId}`
      const answered = answers.get(opKey)
      if (answered !== undefined) return { type: 'duplicate', ...answered }

      const current = stores.get(proposal.storeKey)
      const version = current?.version ?? 0
      if (proposal.baseVersion !== version) {
        return { type: 'conflict', version, state: current?.state }
      }
      const next: StoreState = { version: version + 1, state: proposal.state }
      stores.set(proposal.storeKey, next)
      answers.set(opKey, next)
      if (answers.size > window) answers.delete(answers.keys().next().value as string)

      seq += 1
      const event: CommittedEvent = {
        storeKey: proposal.storeKey,
        version: next.version,
        state: proposal.state,
        clientId: proposal.clientId,
        opId: proposal.opId,
        seq,
        id: formatEventId(epoch, seq),
      }
      for (const listener of listeners) listener(event)
      return { type: 'accepted', event }
    },

    onCommit(listener) {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },

    async close() {
      listeners.clear()
    },
  }
}
