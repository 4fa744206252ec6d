/**
 * The replica's sync state in one place: the stream's status and what `status` shows, whether the
 * server's states are known, the outbox restore, the tab hand-over and `closed`, with each change
 * a named transition.
 */
import type { ZunoError } from '../errors'
import { Observable } from '../observable'
import type { ConnectionStatus } from './connection'

export class SyncState {
  readonly status = new Observable<ConnectionStatus>('connecting')
  /** Why the replica is held (the server refused its credentials), if it is. */
  readonly #refusal: () => ZunoError | undefined
  /** The stream's own status (this tab's, or the leader tab's); {@link status} adds the hold and `closed` to it. */
  #stream: ConnectionStatus = 'connecting'
  /** Whether the server's states are known (a snapshot arrived, or `hydrate` gave them): until then nothing is proposed. */
  #synced = false
  /** While the outbox is being read, nothing is proposed, so restored ops go first. */
  #restoring: boolean
  /** Leader: a tab asked for the state while this one was not synced; it is answered once synced. */
  #greetWhenSynced = false
  /**
   * Follower: it has asked the leader for the state and no snapshot has come yet. Until one does,
   * it is not `connected` (it may hold nothing, or a hydration older than the leader's view).
   */
  #awaitingLeader = false
  /** Follower: the leader's status as last relayed, shown once the leader's snapshot is here. */
  #leaderStatus: ConnectionStatus | undefined
  #closed = false

  constructor(restoring: boolean, refusal: () => ZunoError | undefined) {
    this.#restoring = restoring
    this.#refusal = refusal
  }

  get closed(): boolean {
    return this.#closed
  }

  get synced(): boolean {
    return this.#synced
  }

  /** The stream's own status, without this tab's hold: what the leader tells other tabs. */
  get stream(): ConnectionStatus {
    return this.#stream
  }

  get awaitingLeader(): boolean {
    return this.#awaitingLeader
  }

  /**
   * The stream was lost (not refused) and may be waiting out a long pause, which a new op may cut
   * short. Not after an error answer: a server answering 503 or `too_many_streams` asked for the
   * pause (with a Retry-After, often), and every `set()` reconnecting at once would defeat it.
   */
  get streamLost(): boolean {
    return this.#stream === 'offline' && this.#refusal() === undefined
  }

  /** Whether the head of the queue may be proposed: synced, restored, open, and not held. */
  get mayPropose(): boolean {
    return !this.#closed && this.#synced && !this.#restoring && this.#refusal() === undefined
  }

  /** This tab now holds the stream; with tabs, one that asked before it led is answered once synced. */
  lead(withTabs: boolean): void {
    this.#greetWhenSynced = withTabs
    this.#awaitingLeader = false
  }

  /** Follower: it asked the leader for a snapshot. */
  askLeader(): void {
    this.#awaitingLeader = true
  }

  /** Follower: the leader's snapshot came; returns the leader's status to show now, if this tab was waiting for it. */
  leaderSnapshot(): ConnectionStatus | undefined {
    if (!this.#awaitingLeader) return undefined
    this.#awaitingLeader = false
    return this.#leaderStatus
  }

  /** Follower: the leader's status; returns what this tab shows of it. */
  leaderStatus(status: ConnectionStatus): ConnectionStatus {
    this.#leaderStatus = status
    // `connected` means this tab shows the server's state: not before the leader's snapshot.
    return this.#awaitingLeader && status === 'connected' ? 'connecting' : status
  }

  /** Leader: a tab asked for the state; true when it can be answered now, else it is once synced. */
  greetRequested(): boolean {
    if (!this.#synced) this.#greetWhenSynced = true
    return this.#synced
  }

  /** Leader, now synced: true once if a tab asked while it was not. */
  takeGreeting(): boolean {
    if (!this.#greetWhenSynced || !this.#synced) return false
    this.#greetWhenSynced = false
    return true
  }

  /** The stream's status changed (this tab's or the leader's). */
  streamStatus(status: ConnectionStatus): void {
    this.#stream = status
    this.publish()
    // A lost stream may come back to a restarted server, whose versions start over: propose
    // nothing on a version we knew before until the new stream has said where things stand
    // (a snapshot, or the end of a replay).
    if (status !== 'connected') this.#synced = false
  }

  /** The server's states are known again; true when they were not. */
  markSynced(): boolean {
    if (this.#synced) return false
    this.#synced = true
    return true
  }

  /** The outbox was read. */
  restored(): void {
    this.#restoring = false
  }

  /** Closes; false when it was closed already. */
  close(): boolean {
    if (this.#closed) return false
    this.#closed = true
    return true
  }

  /** What `status` shows: `closed` after close(); while held, why; otherwise the stream's status. */
  publish(): void {
    const refusal = this.#refusal()?.code
    const held = refusal === undefined ? undefined : refusal === 'unauthenticated' ? 'unauthorized' : 'forbidden'
    this.status.set(this.#closed ? 'closed' : (held ?? this.#stream))
  }
}
