/**
 * The life of each pending op, one at a time and in order: delivers the head of the queue, and
 * settles it from the answer (confirm, rebase and retry, refuse, or go on under a fresh client id),
 * keeping the outbox and the pending count in step.
 */
import { isZunoError, ZunoError } from '../errors'
import type { Observable } from '../observable'
import type { StoreChange, StoreState } from '../protocol'
import { type Schemas, schemaFor, validateState } from '../schema'
import type { ProposalAnswer } from './answers'
import type { CredentialHold } from './credentialHold'
import type { EventCursor } from './eventCursor'
import type { OutboxEntry } from './outbox'
import type { OutboxKeeper } from './outboxKeeper'
import { type ActionOp, opLabel, type PendingOp, type PendingQueue, type Renumbered, type ReplicaStore, type StateOp, type WireBody } from './pendingQueue'
import { proposalPatch } from './deltas'
import { CONFLICT_BACKOFF_BASE_MS, classify, classifyFailure, DELIVERY_BACKOFF_BASE_MS, encodeAction, encodeProposal, type Outcome, type Proposer } from './proposer'
import type { ReplicaOptions } from './replicaOptions'
import { confirmFromServer, type ReplicaStores } from './replicaStores'
import type { SyncState } from './syncState'
import type { WriterTags } from './writerTags'

/** How long an answered action waits for its own event before it retires on its answer alone. */
const HEARD_PATIENCE_MS = 3000

/** What an {@link OpLifecycle} works with: the replica's parts it shares, and how to show a store. */
export interface OpLifecycleDeps {
  readonly queue: PendingQueue
  readonly proposer: Proposer
  readonly sync: SyncState
  readonly cursor: EventCursor
  /** Where restored ops find their stores. */
  readonly replicas: ReplicaStores
  readonly hold: CredentialHold
  readonly outbox: OutboxKeeper | undefined
  /** How this replica knows its own ops on the stream: learned for a client id before an op goes out under it. */
  readonly tags: WriterTags
  readonly options: Pick<ReplicaOptions<Schemas>, 'schemas' | 'specs' | 'maxAttempts' | 'onConflict' | 'onError' | 'stores'>
  /** Makes the fresh client id taken after `unknown_client`. */
  readonly newId: () => string
  /** The replica's clock (ms since the epoch). */
  readonly now: () => number
  readonly lastError: Observable<ZunoError | undefined>
  readonly pendingCount: Observable<number>
  /** Publishes a store again after its pending ops or confirmed state changed. */
  readonly show: (replica: ReplicaStore) => void
  /** Publishes stores again as one change (and every store an action showed): after an action settled, or several stores' confirmed states changed. */
  readonly showTogether: (replicas: readonly ReplicaStore[]) => void
  /** How this replica runs a restored action itself, or why it cannot (its schema refuses the arguments now): then it shows no effect, and the server decides. */
  readonly localAction: (name: string, args: unknown) => Pick<ActionOp, 'run' | 'localArgs'> | ZunoError
  /** Whether the stream carries a store: its own `stores`, or one followed since. */
  readonly carried: (storeKey: string) => boolean
}

/** Delivers a replica's pending ops one at a time, in order, and settles each. */
export class OpLifecycle {
  readonly #deps: OpLifecycleDeps

  constructor(deps: OpLifecycleDeps) {
    this.#deps = deps
  }

  /**
   * Proposes the oldest pending op of the whole replica, unless one is on the wire already: the
   * server takes a client's ops in the order they were issued, one at a time.
   */
  pump(): void {
    const op = this.#deps.queue.head
    if (op === undefined || this.#deps.proposer.busy || !this.#deps.sync.mayPropose) return
    // Answered already; it waits for its own event on the stream (see `heard`), not for another try.
    if (op.kind === 'action' && op.heard !== undefined) return
    // The stream may echo the op before the answer comes: its writer tag must be known by then.
    if (this.#deps.tags.of(op.clientId) === undefined) return this.#learnTag(op)
    const epoch = this.#deps.cursor.epoch ?? ''
    if (op.kind === 'action') return this.#proposeAction(op, epoch)
    const { replica } = op
    // An op in doubt goes again as it went, in the current epoch: if the storage kept it (the same
    // history, or one that survived a new epoch), it is recognised. Otherwise the base goes with the
    // state it was computed on, read now, not after the schema check.
    const resend = op.doubtedIn !== undefined && op.lastSent !== undefined ? { ...op.lastSent, epoch } : undefined
    // An update that throws on the current state refuses its op, unless the op may have been applied
    // already: then only the server's answer to the resend can settle it (and its id).
    if (op.failure !== undefined && resend === undefined) return this.#refuse(op, op.failure)
    const madeOn = this.#madeOn(op)
    if (resend === undefined && madeOn !== undefined && replica.deletedAt !== undefined && madeOn < replica.deletedAt) {
      // Made before this replica learned of the deletion: proposed on the tombstone, it would bring the store back.
      return this.#refuse(op, new ZunoError('store_deleted', `${replica.cell.key}: op ${op.opId} refused (the store was deleted at version ${replica.deletedAt})`))
    }
    this.#deps.proposer.start()
    const key = replica.cell.key
    if (resend === undefined) op.sent = op.result
    const body: WireBody = resend ?? this.#freshBody(op, epoch)
    const { schemas, specs } = this.#deps.options
    const schema = schemaFor(schemas, key) ?? specs?.(key)?.schema
    const checked = schema === undefined || resend !== undefined ? Promise.resolve() : validateState(schema, key, body.state)
    checked.then(
      () => {
        let payload: string
        try {
          payload = encodeProposal(key, body, op)
        } catch (unsendable) {
          // Never sent, so not in doubt: refused like a state the schema rejects.
          this.#deps.proposer.done()
          return this.#refuse(op, unsendable as ZunoError)
        }
        // Written down before it goes: a reload from here on restores the op as possibly applied.
        op.lastSent = body
        this.#send(op, payload, body)
      },
      (invalid: unknown) => {
        this.#deps.proposer.done()
        const error = isZunoError(invalid) ? invalid : new ZunoError('invalid_state', `The schema of ${key} threw`, { cause: invalid })
        this.#refuse(op, error)
      },
    )
  }

  /** What a new attempt of `op` sends: its state on the confirmed version, as a patch of it when that is shorter (unless the server could not apply one of its patches before). */
  #freshBody(op: StateOp, epoch: string): WireBody {
    const { replica } = op
    const body: WireBody = { baseVersion: replica.confirmed.version, state: op.sent, epoch }
    if (op.whole) return body
    const patch = proposalPatch(replica, op.sent)
    if (patch !== undefined) body.patch = patch
    return body
  }

  /**
   * Proposes an action: its name and arguments as it was called, whether or not it was in doubt
   * (nothing of it is recomputed for the wire), in the current epoch. The server's schema checks
   * the arguments; a name it does not know is its to refuse.
   */
  #proposeAction(op: ActionOp, epoch: string): void {
    // A resend of an attempt in doubt in this epoch says how long ago it first went: a server that
    // has forgotten the client may then refuse to run it again (see `resentAfterMs`).
    const firstAt = op.doubtedIn === epoch ? op.lastSent?.at : undefined
    const now = this.#deps.now()
    let payload: string
    try {
      payload = encodeAction(op, epoch, firstAt === undefined ? undefined : Math.max(0, Math.round(now - firstAt)))
    } catch (unsendable) {
      // Never sent, so not in doubt (unless an earlier attempt was, which the same arguments could not be).
      return this.#refuse(op, unsendable as ZunoError)
    }
    this.#deps.proposer.start()
    const sent = { epoch, at: firstAt ?? now }
    op.lastSent = sent
    this.#send(op, payload, sent)
  }

  /** Writes the op down (a reload from here on restores it as possibly applied), sends it and settles it from what comes back. */
  #send(op: PendingOp, payload: string, sent: { epoch: string }): void {
    this.save(op)
    this.#deps.proposer.send(payload).then(
      (answer) => {
        this.#deps.proposer.done()
        this.#settle(op, answer, sent)
      },
      (error: unknown) => {
        this.#deps.proposer.done()
        this.#deliveryFailed(op, error, sent)
      },
    )
  }

  /** Proposes once the tag of the op's client id is known; if it could not be computed, after a pause. */
  #learnTag(op: PendingOp): void {
    this.#deps.tags.learn(op.clientId).then(
      () => this.pump(),
      (error: unknown) => {
        if (this.#deps.sync.closed || this.#deps.proposer.busy) return
        this.#deps.lastError.set(new ZunoError('network', 'Could not compute the writer tag of this client', { cause: error }))
        op.failures += 1
        this.#retry(op.failures, DELIVERY_BACKOFF_BASE_MS)
      },
    )
  }

  #settle(op: PendingOp, answer: ProposalAnswer, sent: { epoch: string }): void {
    let outcome: Outcome
    try {
      outcome = classify(op, answer)
    } catch (unreadable) {
      // An answer this replica cannot read (patches past what it holds) says nothing it can use.
      return this.#deliveryFailed(op, unreadable, sent)
    }
    if (this.#deps.queue.head !== op) {
      // Settled already, by our own echo on the stream. An action's echo carries only the stores the
      // stream follows; its answer, every store it wrote.
      if (outcome.type === 'action_accepted') this.#deps.showTogether(this.#confirmChanges(outcome.changes))
      this.pump()
      return
    }
    switch (outcome.type) {
      case 'accepted':
        // Only a `set` is answered so (see classify).
        if (op.kind === 'state') this.confirm(op, outcome.confirmed, outcome.opVersion)
        return
      case 'action_accepted':
        if (op.kind !== 'action') return
        if (op.echoed === undefined && this.#aheadOfStream(outcome.changes)) {
          // Shown now, these states would sit beside stores the stream has not brought up to date:
          // part of someone else's commit. The action retires with its own event, which follows them.
          op.heard = outcome.changes
          // Not for ever: a stream that stopped carrying the store (its rights changed while it
          // stayed open, an instance whose follow is stuck) must not hold every later op.
          this.#deps.proposer.retry(1, 0, () => this.#heardTooLong(op), HEARD_PATIENCE_MS)
          return
        }
        this.confirmAction(op, outcome.changes)
        return
      case 'send_whole':
        // The server could not apply the patch: the same op goes at once with its whole state.
        if (op.kind !== 'state') return
        this.#notApplied(op)
        op.whole = true
        return this.#retry(0, 0)
      case 'conflict': {
        // Only a `set` conflicts (see classify).
        if (op.kind !== 'state') return
        const { replica } = op
        if (op.opId === 1 && op.doubtedIn === sent.epoch) {
          // The server answers a client's first op with 409 only when it keeps no record of the client:
          // the attempt in doubt may have been applied before the server forgot it.
          const error = new ZunoError('outcome_unknown', `${opLabel(op)}: op ${op.opId} may or may not have been applied (the server has no record of this client)`)
          return this.#refuse(op, error, { used: true })
        }
        this.#notApplied(op)
        const { theirs } = outcome
        if (theirs.version > replica.confirmed.version) confirmFromServer(replica, theirs)
        op.conflicts += 1
        this.#deps.options.onConflict?.({ storeKey: replica.cell.key, opId: op.opId, conflicts: op.conflicts, theirs })
        // Deleted and created again since the op's base: the replica learns of the deletion it missed.
        if (outcome.deletedAt !== undefined && (replica.deletedAt ?? -1) < outcome.deletedAt) replica.deletedAt = outcome.deletedAt
        if (theirs.deleted || (outcome.deletedAt !== undefined && (this.#madeOn(op) ?? Infinity) < outcome.deletedAt)) {
          // Made before this replica knew the store was deleted: applied to nothing, it would bring the store back.
          this.#refuse(op, new ZunoError('store_deleted', `${replica.cell.key}: op ${op.opId} refused (the store was deleted at version ${outcome.deletedAt ?? theirs.version})`))
        } else if (op.failure !== undefined) {
          this.#refuse(op, op.failure)
        } else if (replica.policy === 'rollback' || op.conflicts >= (this.#deps.options.maxAttempts ?? 10)) {
          const reason = replica.policy === 'rollback' ? 'the store rolls back on conflict' : `${op.conflicts} conflicts`
          this.#refuse(op, new ZunoError('conflict', `${replica.cell.key}: op ${op.opId} refused (${reason})`))
        } else {
          this.#deps.show(replica)
          this.#retry(op.conflicts - 1, CONFLICT_BACKOFF_BASE_MS)
        }
        return
      }
      case 'epoch_changed':
        // Not processed. Go again once the stream has brought the new epoch (at once, if it has).
        this.#deps.lastError.set(outcome.error)
        // This attempt was not applied; an earlier one in doubt still may have been.
        if (op.doubtedIn === undefined) this.#notApplied(op)
        op.failures += 1
        return this.#retry(sent.epoch !== this.#deps.cursor.epoch ? 0 : op.failures, DELIVERY_BACKOFF_BASE_MS)
      case 'unknown_client':
        return this.#startAfresh(op)
      case 'held':
        if (op.doubtedIn === undefined) this.#notApplied(op)
        this.#deps.lastError.set(outcome.error)
        this.#deps.hold.hold(outcome.error)
        this.#deps.sync.publish()
        return
      case 'refused':
        return this.#refuse(op, outcome.error, { used: outcome.used })
    }
  }

  /**
   * The server keeps no record of this client: it was forgotten, or the storage is new. An op in
   * doubt in the current epoch may have been applied before that, so it is never sent again under
   * another identity: it rejects with `outcome_unknown`. The rest of the queue goes on, in order,
   * under a fresh identity.
   */
  #startAfresh(head: PendingOp): void {
    if (head.kind === 'action' && head.echoed !== undefined) {
      // Its own event was on the stream: it was applied, whatever the server has forgotten since.
      this.confirmAction(head, [], { next: false })
    } else if (head.doubtedIn === this.#deps.cursor.epoch) {
      this.#refuse(head, new ZunoError('outcome_unknown', `${opLabel(head)}: op ${head.opId} was sent, never answered, and the server has since forgotten this client`), { next: false })
    }
    const clientId = this.#deps.newId()
    this.#deps.outbox?.adopt(clientId)
    this.#moved(this.#deps.queue.renumberAs(clientId))
    this.pump()
  }

  /** An answer showed the op was not applied: it may be rebased, and a reload need not treat it as in doubt. */
  #notApplied(op: PendingOp): void {
    op.doubtedIn = undefined
    op.lastSent = undefined
    this.save(op)
  }

  /** The network or the server failed: the op stays first in line, in doubt, and goes again unchanged after a pause. */
  #deliveryFailed(op: PendingOp, error: unknown, sent: { epoch: string }): void {
    if (this.#deps.sync.closed) return
    const failure = classifyFailure(error)
    this.#deps.lastError.set(failure.error)
    if (this.#deps.queue.head !== op) return this.pump()
    if (failure.mayHaveApplied) op.doubtedIn = sent.epoch
    op.failures += 1
    this.#retry(op.failures, DELIVERY_BACKOFF_BASE_MS, failure.waitAtLeast)
  }

  /** Proposes again after a jittered pause (none for the first retry after a conflict). */
  #retry(attempt: number, baseMs: number, waitAtLeast = 0): void {
    this.#deps.proposer.retry(attempt, baseMs, () => this.pump(), waitAtLeast)
  }

  /** Back online: an op waiting out a delivery backoff goes now. */
  flush(): void {
    if (this.#deps.proposer.flush()) this.pump()
  }

  /**
   * The op was accepted; `confirmed` is what the server made of it (its schema may have transformed
   * it), or the store's current truth with `opVersion`, the version the op made, for a late answer.
   */
  confirm(op: StateOp, confirmed: StoreState, opVersion = confirmed.version): void {
    const { replica } = op
    this.#deps.queue.dequeue(op)
    if (confirmed.version > replica.confirmed.version) confirmFromServer(replica, confirmed)
    this.countPending(-1)
    this.#deps.show(replica)
    this.#forget(op)
    op.resolve(opVersion)
    this.pump()
  }

  /**
   * The action was accepted; `changes` are the stores it wrote, from its answer or its echo. Each
   * newer than what this replica holds is confirmed, all of them shown as one change, with the
   * action's own effect gone (the changes carry it).
   */
  confirmAction(op: ActionOp, changes: readonly StoreChange[], { next = true } = {}): void {
    // Its wait for its own event (see `heard`) is over.
    if (op.heard !== undefined) this.#deps.proposer.flush()
    this.#deps.queue.dequeue(op)
    const changed = this.#confirmChanges(changes)
    this.countPending(-1)
    this.#deps.showTogether(changed)
    this.#forget(op)
    op.resolve()
    if (next) this.pump()
  }

  /** Whether a change of a store the stream follows skips a version this replica has not seen: the stream has more to bring first. */
  #aheadOfStream(changes: readonly StoreChange[]): boolean {
    return changes.some((change) => this.#streamed(change) && change.version > this.#deps.replicas.get(change.storeKey).confirmed.version + 1)
  }

  /** Whether the stream carries this change's store (it follows it, and the change has a state this principal may read, or deleted it). */
  #streamed(change: StoreChange): boolean {
    return (change.deleted === true || 'state' in change) && this.#deps.carried(change.storeKey)
  }

  /**
   * An action's own event arrived on the stream with `changes`, the stores it follows. It retires
   * now, unless it wrote here a store the event does not carry: then those keep showing what it
   * wrote until its answer confirms them (no render shows half of it).
   */
  echoAction(op: ActionOp, changes: readonly StoreChange[]): void {
    const heard = op.heard
    if (heard !== undefined) return this.confirmAction(op, [...changes, ...heard])
    const carried = new Set(changes.map((change) => this.#deps.replicas.get(change.storeKey)))
    const missing = [...op.writes.keys()].some((replica) => !carried.has(replica))
    if (!missing || op.echoed !== undefined) return this.confirmAction(op, changes)
    op.echoed = carried
    this.#deps.showTogether(this.#confirmChanges(changes))
  }

  /** An answered action whose own event has not come within the patience: it retires on its answer. */
  #heardTooLong(op: ActionOp): void {
    if (this.#deps.queue.head === op && op.heard !== undefined) this.confirmAction(op, op.heard)
    else this.pump()
  }

  /**
   * After a snapshot: an answered action whose own event the snapshot includes retires. So does one
   * of a history the snapshot replaced (a new epoch): it was accepted there, and its event will not come.
   */
  settleHeard(newEpoch: boolean): void {
    const head = this.#deps.queue.head
    if (head?.kind !== 'action' || head.heard === undefined) return
    if (newEpoch) return this.confirmAction(head, [])
    const caughtUp = head.heard.every((change) => !this.#streamed(change) || change.version <= this.#deps.replicas.get(change.storeKey).confirmed.version)
    if (caughtUp) this.confirmAction(head, head.heard)
  }

  /** Confirms each change newer than what this replica holds of its store; returns the stores it moved, to show. */
  #confirmChanges(changes: readonly StoreChange[]): ReplicaStore[] {
    const changed: ReplicaStore[] = []
    for (const change of changes) {
      // A store the principal may write but not read comes without its state: nothing to show of it.
      const deleted = change.deleted === true
      if (!deleted && !('state' in change)) continue
      const replica = this.#deps.replicas.get(change.storeKey)
      if (change.version <= replica.confirmed.version) continue
      // This replica's own deletion: the sets it queued after the action were made on it, and may create the store again.
      confirmFromServer(replica, { version: change.version, state: deleted ? replica.initial : change.state })
      changed.push(replica)
    }
    return changed
  }

  /**
   * Drops the op and rejects its promise. Unless the server used up its id (`used`: it recorded
   * the refusal), the ops after it of the same client move down one id, so the ids the server sees
   * stay contiguous.
   */
  #refuse(op: PendingOp, error: ZunoError, { used = false, next = true } = {}): void {
    this.#deps.queue.dequeue(op)
    if (!used) this.#moved(this.#deps.queue.freeId(op))
    this.countPending(-1)
    if (op.kind === 'state') this.#deps.show(op.replica)
    else this.#deps.showTogether([])
    this.#forget(op)
    this.#deps.lastError.set(error)
    this.#deps.options.onError?.(error, op.kind === 'state' ? { storeKey: op.replica.cell.key, opId: op.opId } : { action: op.name, opId: op.opId })
    op.reject(error)
    if (next) this.pump()
  }

  /** Moves the outbox entries of ops whose ids changed. */
  #moved(renumbered: Renumbered[]): void {
    for (const { op, was } of renumbered) {
      this.#deps.outbox?.forget(was.clientId, was.opId)
      this.save(op)
    }
  }

  /** Ops queued before a reload go first (see {@link PendingQueue.restore}); nothing was proposed while they were read. */
  restore(entries: OutboxEntry[]): void {
    this.#deps.sync.restored()
    const restored = this.#deps.queue.restore(entries, (key) => this.#deps.replicas.get(key), (name, args) => {
      const local = this.#deps.localAction(name, args)
      return local instanceof ZunoError ? { run: undefined, localArgs: args } : local
    })
    this.countPending(restored.length)
    const replicas = new Set<ReplicaStore>()
    for (const op of restored) if (op.kind === 'state') replicas.add(op.replica)
    this.#deps.showTogether([...replicas])
    this.pump()
  }

  /** The version a `set` was made on, when known in the current epoch (a restored op's may be of another). */
  #madeOn(op: StateOp): number | undefined {
    return op.madeIn === undefined || op.madeIn === this.#deps.cursor.epoch ? op.madeOn : undefined
  }

  /** Writes the op down in the outbox, if there is one: a reload restores it from there. */
  save(op: PendingOp): void {
    this.#deps.outbox?.saveOp(op, this.#deps.cursor.epoch)
  }

  #forget(op: PendingOp): void {
    this.#deps.outbox?.forget(op.clientId, op.opId)
  }

  /** Moves the `pending` count by `delta` ops. */
  countPending(delta: number): void {
    this.#deps.pendingCount.set(this.#deps.pendingCount.get() + delta)
  }
}
