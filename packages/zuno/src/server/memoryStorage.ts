import { randomId } from '../id'
import { writerTag } from '../protocol'
import { CLIENT_DEFAULTS, ClientLedger } from './clientLedger'
import type { CommitOutcome, CommitRequest, RefusalRequest, Storage, StorageImage } from './storage'
import { StoreTable } from './storeTable'

/** What a storage keeps per client; every storage takes these options. */
export interface ClientRecordOptions {
  /** Answers kept per client for retries of ops already processed. Default 16; 1 is enough for Zuno's client. */
  idempotencyWindow?: number
  /** A client with no op processed for this long may be forgotten (its next op gets `unknown_client`). Default 30 days. */
  clientLifetimeMs?: number
  /** The clock the lifetime is measured on. Default `Date.now`. */
  now?: () => number
}

/** Options of {@link createMemoryStorage}. */
export interface MemoryStorageOptions extends ClientRecordOptions {}

/** Keeps everything in this process; a restart starts a new, empty epoch. */
export function createMemoryStorage(options: MemoryStorageOptions = {}): Storage {
  const epoch = randomId()
  const table = new StoreTable(
    new ClientLedger(
      options.idempotencyWindow ?? CLIENT_DEFAULTS.idempotencyWindow,
      options.clientLifetimeMs ?? CLIENT_DEFAULTS.clientLifetimeMs,
      options.now,
    ),
  )
  let seq = 0

  return {
    async load(): Promise<StorageImage> {
      return { epoch, seq, stores: new Map(table.states) }
    },

    async commit(request: CommitRequest): Promise<CommitOutcome> {
      const refused = table.refuse(request, epoch)
      if (refused !== undefined) return refused
      seq += 1
      const event = table.accept(request, epoch, seq, writerTag(request.clientId))
      table.commit(event, request)
      return { type: 'accepted', event }
    },

    async refuse(request: RefusalRequest): Promise<CommitOutcome> {
      return table.decide(request, epoch) ?? table.recordRefusal(request)
    },

    onCommit: (listener) => table.onCommit(listener),

    async close() {
      table.close()
    },
  }
}
