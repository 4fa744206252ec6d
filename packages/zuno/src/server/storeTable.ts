import { formatEventId, type StoreState } from '../protocol'
import { ClientLedger } from './clientLedger'
import { notifyEach } from './notify'
import type { CommitOutcome, CommitRequest, CommittedEvent, OpIdentity, RefusalRequest } from './storage'

const RESOLVED = Promise.resolve()

/**
 * The in-process half of a storage that keeps its truth here (memory, file): every store's current
 * state and every client's record, the decisions on them, and the storage's commit listeners.
 */
export class StoreTable {
  readonly #listeners = new Set<(event: CommittedEvent) => void>()
  readonly states = new Map<string, StoreState>()
  /** Commits whose listeners have not heard of them yet. */
  readonly #undelivered: CommittedEvent[] = []

  constructor(readonly ledger: ClientLedger) {}

  /** The outcome of an op that cannot be accepted (a retry, a stale base, …); `undefined` if it can. */
  refuse(request: CommitRequest, epoch: string): CommitOutcome | undefined {
    const decided = this.decide(request, epoch)
    if (decided !== undefined) return decided
    const { storeKey, baseVersion } = request.write
    const current = this.states.get(storeKey)
    const version = current?.version ?? 0
    return baseVersion === version ? undefined : { type: 'conflict', version, state: current?.state }
  }

  /** The epoch and client checks alone: what a refusal for good must pass before it is recorded. */
  decide(request: OpIdentity & { epoch: string }, epoch: string): CommitOutcome | undefined {
    if (request.epoch !== epoch) return { type: 'epoch_changed', epoch }
    return this.ledger.decide(request)
  }

  /** The event that accepting `request` as the `seq`-th change makes. */
  accept(request: CommitRequest, epoch: string, seq: number, writer: string): CommittedEvent {
    const { storeKey, state, stateBytes } = request.write
    const version = (this.states.get(storeKey)?.version ?? 0) + 1
    const event: CommittedEvent = { storeKey, version, state, writer, opId: request.opId, seq, id: formatEventId(epoch, seq) }
    if (stateBytes !== undefined) event.stateBytes = stateBytes
    return event
  }

  /** Records an accepted change (just committed, or recovered) and its client's answer. */
  record(event: CommittedEvent, op: OpIdentity, at?: number): void {
    const { storeKey, version, state, seq } = event
    this.states.set(storeKey, { version, state })
    // The answer names the write, not its state: a copy of every client's last state would make
    // memory grow with the clients instead of the live state.
    this.ledger.record(op, { type: 'accepted', storeKey, version, seq }, at)
  }

  /** Records a refusal for good (just decided, or recovered). */
  recordRefusal(request: RefusalRequest, at?: number): CommitOutcome {
    const { storeKey, error, message, issues } = request
    const answer = { type: 'refused' as const, storeKey, error, message, ...(issues === undefined ? {} : { issues }) }
    this.ledger.record(request, answer, at)
    return { type: 'answered', answer }
  }

  /**
   * Records a change just committed; the listeners hear of it once the commit has returned, the
   * same way as from a storage shared by several instances.
   */
  commit(event: CommittedEvent, op: OpIdentity): void {
    this.record(event, op)
    if (this.#listeners.size === 0) return
    this.#undelivered.push(event)
    // A resolved promise rather than queueMicrotask, which wraps every callback in an async
    // resource on Node.js; one bound callback for all, not a closure per commit.
    if (this.#undelivered.length === 1) void RESOLVED.then(this.#deliver)
  }

  /** Hands the commits of the last turn to the listeners, in order (also those their listeners make meanwhile). */
  readonly #deliver = (): void => {
    const events = this.#undelivered
    for (let i = 0; i < events.length; i++) notifyEach(this.#listeners, events[i] as CommittedEvent, 'a commit listener')
    events.length = 0
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
