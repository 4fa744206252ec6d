import type { StoreState } from '../protocol'
import { ClientLedger } from './clientLedger'
import { LoggedEvent } from './log'
import { notifyEach } from './notify'
import type { ActionCommitRequest, CommitOutcome, CommitRequest, CommittedChange, CommittedEvent, OpIdentity, RefusalRequest } from './storage'

/**
 * The in-process half of a storage that keeps its truth here (memory, file): every store's current
 * state and every client's record, the decisions on them, and the storage's commit listeners.
 */
export class StoreTable {
  readonly #listeners = new Set<(event: CommittedEvent) => void>()
  /** Each store's current version and state; entries change in place, so a reader that keeps one copies it. */
  readonly states = new Map<string, StoreState>()
  /** Whether events tell `existed` (a storage read lazily must); off, they stay as small as before. */
  tellsExisted = false
  /** Commits whose listeners have not heard of them yet: more than one only while listeners run. */
  readonly #undelivered: CommittedEvent[] = []

  constructor(readonly ledger: ClientLedger) {}

  /** The outcome of an op that cannot be accepted (a retry, a stale base, …); `undefined` if it can. */
  refuse(request: CommitRequest, epoch: string): CommitOutcome | undefined {
    const decided = this.decide(request, epoch)
    if (decided !== undefined) return decided
    const { storeKey, baseVersion } = request.write
    const current = this.states.get(storeKey)
    const version = current?.version ?? 0
    if (baseVersion === version) return undefined
    const conflict = conflictWith(version, current)
    // Created again since: an op made on the store that was deleted is told so.
    const deletedAt = current?.deletedAt
    if (!conflict.deleted && deletedAt !== undefined && baseVersion < deletedAt) conflict.deletedAt = deletedAt
    return conflict
  }

  /** The outcome of an action that cannot be accepted (a retry, a store moved since it was read, …); `undefined` if it can. */
  refuseAction(request: ActionCommitRequest, epoch: string): CommitOutcome | undefined {
    const decided = this.decide(request, epoch)
    if (decided !== undefined) return decided
    for (const { storeKey, baseVersion } of request.writes) {
      const moved = this.#moved(storeKey, baseVersion)
      if (moved !== undefined) return moved
    }
    for (const { storeKey, version } of request.reads) {
      const moved = this.#moved(storeKey, version)
      if (moved !== undefined) return moved
    }
    return undefined
  }

  /** A conflict if `storeKey` is no longer at `version`. */
  #moved(storeKey: string, version: number): CommitOutcome | undefined {
    const current = this.states.get(storeKey)
    const now = current?.version ?? 0
    return now === version ? undefined : { ...conflictWith(now, current), storeKey }
  }

  /** The epoch and client checks alone: what a refusal for good must pass before it is recorded. */
  decide(request: OpIdentity & { epoch: string }, epoch: string): CommitOutcome | undefined {
    if (request.epoch !== epoch) return { type: 'epoch_changed', epoch }
    return this.ledger.decide(request)
  }

  /** The event that accepting `request` as the `seq`-th change makes. */
  accept(request: CommitRequest, epoch: string, seq: number, writer: string): CommittedEvent {
    const { storeKey, state, stateBytes, patch, deleted } = request.write
    const current = this.states.get(storeKey)
    const version = (current?.version ?? 0) + 1
    const existed = this.tellsExisted ? current !== undefined && current.deleted !== true : undefined
    return new LoggedEvent(storeKey, version, deleted ? undefined : state, writer, request.opId, seq, stateBytes, epoch, undefined, patch, deleted ? true : undefined, existed)
  }

  /** The event that accepting an action's writes (one at least) as the `seq`-th change makes: one event, whatever the number of stores. */
  acceptAction(request: ActionCommitRequest, epoch: string, seq: number, writer: string): CommittedEvent {
    const changes: CommittedChange[] = []
    let bytes = 0
    for (const { storeKey, state, stateBytes, patch, deleted } of request.writes) {
      const current = this.states.get(storeKey)
      const version = (current?.version ?? 0) + 1
      const change: CommittedChange = deleted ? { storeKey, version, state: undefined, deleted: true } : { storeKey, version, state, stateBytes, patch }
      if (this.tellsExisted) change.existed = current !== undefined && current.deleted !== true
      changes.push(change)
      bytes += stateBytes ?? 0
    }
    const [first] = changes as [CommittedChange]
    if (changes.length === 1) {
      return new LoggedEvent(first.storeKey, first.version, first.state, writer, request.opId, seq, first.stateBytes, epoch, undefined, first.patch, first.deleted ? true : undefined, first.existed)
    }
    return new LoggedEvent(first.storeKey, first.version, first.state, writer, request.opId, seq, bytes, epoch, changes)
  }

  /** Records an accepted change (just committed, or recovered) and its client's answer. */
  record(event: CommittedEvent, op: OpIdentity, at?: number): void {
    const { storeKey, version, state, seq, changes } = event
    if (changes === undefined) this.#store(storeKey, version, state, event.deleted === true)
    else for (const change of changes) this.#store(change.storeKey, change.version, change.state, change.deleted === true)
    // The answer names the write, not its state: a copy of every client's last state would make
    // memory grow with the clients instead of the live state.
    this.ledger.recordAccepted(op, storeKey, version, seq, at)
  }

  /** Records an action that wrote nothing (just decided, or recovered), decided when the log was at `seq`. */
  recordUnchanged(op: OpIdentity, seq: number, at?: number): CommitOutcome {
    // Store key '' names no store: the kept answer says "accepted, nothing written".
    this.ledger.recordAccepted(op, '', 0, seq, at)
    return { type: 'unchanged', seq }
  }

  #store(storeKey: string, version: number, state: unknown, deleted: boolean): void {
    // In place: a store's entry lives from one write to the next, long enough to be promoted, so a
    // new one per write would be copied once per write. A deleted store keeps its version (a
    // tombstone): created again, it goes on from there, so its versions never go back.
    // The latest deletion stays on the entry (and in snapshots) when the store is created again.
    const current = this.states.get(storeKey)
    if (current === undefined) this.states.set(storeKey, deleted ? { version, state: undefined, deleted, deletedAt: version } : { version, state })
    else {
      current.version = version
      current.state = deleted ? undefined : state
      if (deleted) {
        current.deleted = true
        current.deletedAt = version
      } else if (current.deleted) delete current.deleted
    }
  }

  /** Records a refusal for good (just decided, or recovered). */
  recordRefusal(request: RefusalRequest, at?: number): CommitOutcome {
    const { storeKey, error, message, issues } = request
    const answer = { type: 'refused' as const, storeKey, error, message, ...(issues === undefined ? {} : { issues }) }
    this.ledger.recordRefused(request, answer, at)
    return { type: 'answered', answer }
  }

  /**
   * Records a change just committed and tells the listeners before returning: the universe has
   * applied it by the time the commit answers. A commit made by a listener meanwhile waits in
   * line, so listeners hear every change in log order.
   */
  commit(event: CommittedEvent, op: OpIdentity): void {
    this.record(event, op)
    if (this.#listeners.size === 0) return
    this.#undelivered.push(event)
    if (this.#undelivered.length > 1) return // a listener's commit: the loop below delivers it
    try {
      for (let i = 0; i < this.#undelivered.length; i++) notifyEach(this.#listeners, this.#undelivered[i] as CommittedEvent, 'a commit listener')
    } finally {
      this.#undelivered.length = 0
    }
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

/** A copy of a table's states that later writes leave alone (the table changes its entries in place). */
export function copyStates(states: ReadonlyMap<string, StoreState>): Map<string, StoreState> {
  const copy = new Map<string, StoreState>()
  for (const [key, { version, state, deleted, deletedAt }] of states) {
    const entry: StoreState = deleted ? { version, state, deleted } : { version, state }
    if (deletedAt !== undefined) entry.deletedAt = deletedAt
    copy.set(key, entry)
  }
  return copy
}

/** The conflict answer for a store at `version` (`current`: its entry, if it has one). */
function conflictWith(version: number, current: StoreState | undefined): Extract<CommitOutcome, { type: 'conflict' }> {
  return current?.deleted ? { type: 'conflict', version, state: undefined, deleted: true } : { type: 'conflict', version, state: current?.state }
}
