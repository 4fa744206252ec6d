import type { StateEvent, StoreState, SyncRequest } from '../protocol'

/** A proposed change, already validated. */
export type Proposal = SyncRequest

/** An accepted change with its place in the universe-wide log. */
export interface CommittedEvent extends StateEvent {
  /** Universe-wide, strictly increasing; 1 for the first change of an epoch. */
  seq: number
  /** The event id clients resume from: `<epoch>-<seq>`. */
  id: string
}

/** What became of a proposal. */
export type CommitOutcome =
  | { type: 'accepted'; event: CommittedEvent }
  /** The same `(clientId, opId)` was accepted before: here is that original answer. */
  | { type: 'duplicate'; version: number; state: unknown }
  /** `baseVersion` was stale: here is the current state. */
  | { type: 'conflict'; version: number; state: unknown }

/** What a storage holds when a universe starts on it. */
export interface StorageImage {
  /** Identifies this log; ids of another epoch are never taken for this one's. */
  epoch: string
  /** Sequence number of the last committed event (0 when none). */
  seq: number
  stores: Map<string, StoreState>
  /** The last events before `seq`, oldest first, if the storage keeps them: clients can then resume across a restart. */
  recent?: CommittedEvent[]
}

/**
 * Where an authoritative universe keeps its truth. `commit` is the one atomic step of the
 * protocol: compare the version, write the state, remember the `(clientId, opId)` and append
 * to the log, all or nothing. Implementations: memory (default); a durable log and Redis plug in here.
 */
export interface Storage {
  /** Reads the current image once, when the universe starts. */
  load(): Promise<StorageImage>
  /** Applies the proposal iff `baseVersion` is the store's current version. */
  commit(proposal: Proposal): Promise<CommitOutcome>
  /**
   * Calls `listener` with every committed event, in log order, including those committed
   * through other instances sharing the storage. Returns the function that stops it.
   */
  onCommit(listener: (event: CommittedEvent) => void): () => void
  /** Releases resources. */
  close(): Promise<void>
}
