import { ZunoError } from '../errors'
import type { ActionEntry, Outbox, OutboxEntry, StateEntry } from './outbox'
import type { PendingOp } from './pendingQueue'
import type { LockManagerLike } from './tabs'

/**
 * A replica's side of its outbox: it writes and clears entries, and at start takes over the
 * entries of sessions that are gone. An open tab holds a Web Lock named after its client id, so a
 * new tab leaves a live tab's entries alone; a reloaded or closed tab's lock is free, and whoever
 * takes it replays that tab's ops. Without Web Locks the outbox assumes a single tab.
 */
export class OutboxKeeper {
  /** Releases the locks held: this session's own, and those taken over. */
  readonly #releases: Array<() => void> = []

  constructor(
    readonly outbox: Outbox,
    readonly locks: LockManagerLike | undefined,
    clientId: string,
    /** Told of write failures, which are not fatal to the op but must not be silent. */
    readonly report: (error: ZunoError) => void,
  ) {
    this.adopt(clientId)
  }

  /** Holds the lock of a client id this session now writes under (its own, or a fresh one after `unknown_client`). */
  adopt(clientId: string): void {
    void this.#hold(lockName(clientId))
  }

  /** The entries of sessions that are gone, oldest first; from now on they are this replica's. */
  async takeOver(): Promise<OutboxEntry[]> {
    const entries = await this.outbox.load()
    const owners = [...new Set(entries.map((entry) => entry.clientId))]
    const claimed = await Promise.all(owners.map((owner) => this.#hold(lockName(owner))))
    const mine = new Set(owners.filter((_, i) => claimed[i]))
    return entries.filter((entry) => mine.has(entry.clientId)).sort((a, b) => a.queuedAt - b.queuedAt || a.opId - b.opId)
  }

  /**
   * Writes down what a reload needs of the op: a `set`'s state as it last produced or sent it, an
   * action as it was called, and where it went. A `set` whose updater threw is not kept.
   */
  saveOp(op: PendingOp, epoch?: string): void {
    const { clientId, opId, queuedAt } = op
    if (op.kind === 'action') {
      const entry: ActionEntry = { clientId, opId, queuedAt, action: op.name }
      if (op.args !== undefined) entry.args = op.args
      if (op.lastSent !== undefined) entry.sentOn = op.lastSent.at === undefined ? { epoch: op.lastSent.epoch } : { epoch: op.lastSent.epoch, at: op.lastSent.at }
      return this.save(entry)
    }
    if (op.failure !== undefined) return
    const entry: StateEntry = { clientId, opId, queuedAt, storeKey: op.replica.cell.key, state: op.lastSent?.state ?? op.result }
    const madeIn = op.madeIn ?? epoch
    if (op.madeOn !== undefined && madeIn !== undefined) entry.madeOn = { version: op.madeOn, epoch: madeIn }
    if (op.lastSent !== undefined) {
      const { baseVersion, epoch, patch } = op.lastSent
      entry.sentOn = patch === undefined ? { baseVersion, epoch } : { baseVersion, epoch, patch }
    }
    this.save(entry)
  }

  /** Stores (or replaces) an op's entry. */
  save(entry: OutboxEntry): void {
    this.outbox.put(entry).catch((error: unknown) => this.report(new ZunoError('protocol', 'Could not write the outbox', { cause: error })))
  }

  /** Clears an op's entry once it is accepted or refused. */
  forget(clientId: string, opId: number): void {
    this.outbox.delete(clientId, opId).catch((error: unknown) => {
      // A stale entry is proposed again after a reload and answered from the server's
      // idempotency record while that still holds it; say so rather than stay silent.
      this.report(new ZunoError('protocol', 'Could not clear the outbox', { cause: error }))
    })
  }

  /** Lets go of the locks: the entries left become the next session's. */
  close(): void {
    for (const release of this.#releases.splice(0)) release()
  }

  /** Takes a Web Lock if it is free and keeps it until `close`; resolves whether it got it. */
  #hold(name: string): Promise<boolean> {
    const locks = this.locks
    if (locks === undefined) return Promise.resolve(true)
    return new Promise<boolean>((resolve) => {
      locks
        .request(name, { ifAvailable: true }, (lock) => {
          resolve(lock !== null)
          return lock === null ? Promise.resolve() : new Promise<void>((release) => this.#releases.push(release))
        })
        .catch(() => resolve(false))
    })
  }
}

const lockName = (clientId: string) => `zuno-outbox:${clientId}`
