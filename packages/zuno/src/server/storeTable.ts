import { formatEventId, type StoreState } from '../protocol'
import { BoundedMap } from './boundedMap'
import type { CommitOutcome, CommittedEvent, Proposal } from './storage'

/**
 * The in-process half of a storage that keeps its truth here (memory, file): every store's current
 * state and the recent `(clientId, opId)` answers, the compare-and-set decision on them, and the
 * storage's commit listeners.
 */
export class StoreTable {
  readonly #listeners = new Set<(event: CommittedEvent) => void>()
  readonly states = new Map<string, StoreState>()
  /** The answers to recent `(clientId, opId)` pairs; the oldest are forgotten first. */
  readonly answers: BoundedMap<string, StoreState>

  constructor(
    /** How many answers are kept. */
    readonly window: number,
  ) {
    this.answers = new BoundedMap(window)
  }

  /** The answer to a proposal that cannot be accepted (a retry, or a stale base); `undefined` if it can. */
  refuse(proposal: Proposal): CommitOutcome | undefined {
    const answered = this.answers.get(answerKey(proposal))
    if (answered !== undefined) return { type: 'duplicate', ...answered }
    const current = this.states.get(proposal.storeKey)
    const version = current?.version ?? 0
    return proposal.baseVersion === version ? undefined : { type: 'conflict', version, state: current?.state }
  }

  /** The event that accepting `proposal` as the `seq`-th change makes. */
  accept(proposal: Proposal, epoch: string, seq: number): CommittedEvent {
    const version = (this.states.get(proposal.storeKey)?.version ?? 0) + 1
    const { storeKey, state, clientId, opId } = proposal
    return { storeKey, version, state, clientId, opId, seq, id: formatEventId(epoch, seq) }
  }

  /** Records a committed (or recovered) change. */
  record(change: Omit<CommittedEvent, 'id' | 'seq'>): void {
    const state = { version: change.version, state: change.state }
    this.states.set(change.storeKey, state)
    this.answers.set(answerKey(change), state)
  }

  /** Records a change just committed and tells the listeners. */
  commit(event: CommittedEvent): void {
    this.record(event)
    for (const listener of this.#listeners) listener(event)
  }

  /** `Storage.onCommit`: calls `listener` with each committed change; returns the unsubscribe. */
  onCommit(listener: (event: CommittedEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** Forgets every listener, as the storage closes. */
  close(): void {
    this.#listeners.clear()
  }
}

function answerKey(op: { clientId: string; opId: number }): string {
  return `${op.clientId}\u0000${op.opId}`
}
