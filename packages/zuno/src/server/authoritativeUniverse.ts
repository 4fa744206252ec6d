import { ZunoError } from '../errors'
import type { StateResponse, StoreState } from '../protocol'
import { type Schemas, schemaFor, type StatesOf, validateState } from '../schema'
import { applyUpdater, type StoreCell, type Updater } from '../store'
import { Universe } from '../universe'
import { randomId } from '../id'
import { utf8Length } from './bytes'
import { EventLog, type LogEntry, logEntry } from './log'
import { createMemoryStorage } from './memoryStorage'
import type { CommitOutcome, CommittedEvent, Proposal, Storage } from './storage'

/** Options of {@link createUniverse}. */
export interface UniverseOptions<S extends Schemas = Schemas> {
  /** Stores that exist from the start, with their initial state (at version 0). */
  stores?: Record<string, unknown>
  /**
   * Whether clients may create a store that does not exist yet (by proposing on version 0).
   * Default: only the stores declared in `stores`.
   */
  allowStore?: (storeKey: string) => boolean
  /** Where the truth is kept. Default: in memory. A storage passed in stays open when the universe closes. */
  storage?: Storage
  /** How many recent events are kept for clients that resume. Default 10,000. */
  retention?: number
  /**
   * Per-store Standard Schemas (zod, valibot, arktype…). Every write, a client's or the server's,
   * is validated (422 `invalid_state` with the issues); the schema's output is what is stored.
   */
  schemas?: S
  /** Most stores that may exist (403 `store_limit` for one more). Default 10,000. */
  maxStores?: number
  /** Largest state of one store, in bytes of JSON (413 `state_too_large`). Default: only the body limit. */
  maxStateBytes?: number
}

/** How many times a server-side `set` retries after losing a race to another writer. */
const SERVER_WRITE_ATTEMPTS = 64

/**
 * The server's universe: the source of truth. Clients propose through a sync adapter; server
 * code reads and writes the same stores, and its writes are logged and streamed like any client's.
 */
export class AuthoritativeUniverse<TStores extends Record<string, unknown> = Record<string, unknown>> extends Universe<TStores> {
  readonly role = 'authoritative' as const
  /** Settles once the storage has been read; requests wait for it. */
  readonly ready: Promise<void>
  readonly #storage: Storage
  readonly #ownsStorage: boolean
  readonly #declared: Map<string, unknown>
  readonly #allowStore: (storeKey: string) => boolean
  readonly #retention: number
  readonly #schemas: Schemas | undefined
  readonly #maxStores: number
  readonly #maxStateBytes: number | undefined
  readonly #listeners = new Set<(entry: LogEntry) => void>()
  /** Committed events waiting to be applied, so a write made by a listener keeps log order. */
  readonly #arrivals: CommittedEvent[] = []
  #applying = false
  #log: EventLog | undefined
  /** Set once `ready` has settled successfully, so a write need not wait a turn for it. */
  #started = false
  #stopCommits: (() => void) | undefined
  /** Server writes get a client id of their own per instance, so restarts never reuse an op id. */
  readonly #clientId = `server.${randomId()}`
  #opId = 0
  /** Stores that exist for clients (declared, or written at least once); kept as a count so a check is O(1). */
  #visibleCount = 0

  constructor(options: UniverseOptions<Schemas> = {}) {
    super()
    this.#storage = options.storage ?? createMemoryStorage()
    this.#ownsStorage = options.storage === undefined
    this.#declared = new Map(Object.entries(options.stores ?? {}))
    const declared = this.#declared
    this.#allowStore = options.allowStore ?? ((storeKey) => declared.has(storeKey))
    this.#retention = options.retention ?? 10_000
    this.#schemas = options.schemas
    this.#maxStores = options.maxStores ?? 10_000
    this.#maxStateBytes = options.maxStateBytes
    for (const [key, initial] of this.#declared) this.cell(key, initial)
    this.#visibleCount = this.#declared.size
    this.ready = this.#start()
    // Failures surface through `ready` and every request; this only avoids an unhandled rejection.
    this.ready.catch(() => {})
  }

  async #start(): Promise<void> {
    const image = await this.#storage.load()
    const recent = image.recent ?? []
    this.#log = new EventLog(image.epoch, image.seq - recent.length, this.#retention)
    for (const event of recent) this.#log.append(logEntry(event))
    for (const [key, stored] of image.stores) this.#publish(key, stored.state, stored.version)
    this.#stopCommits = this.#storage.onCommit((event) => this.#arrive(event))
    this.#started = true
  }

  /** The in-memory log, once ready. */
  #readyLog(): EventLog {
    if (this.#log === undefined) throw new ZunoError('unavailable', 'The universe is still loading')
    return this.#log
  }

  /**
   * Offers a change. `trusted` proposals (from server code) may create any store; others only
   * those the universe allows.
   */
  async propose(proposal: Proposal, trusted = false): Promise<CommitOutcome> {
    if (!this.#started) await this.ready
    const existing = this.existing(proposal.storeKey)
    const exists = existing !== undefined && this.#isVisible(existing)
    if (!trusted && !exists && !this.#allowStore(proposal.storeKey)) {
      throw new ZunoError('store_not_allowed', `Store ${JSON.stringify(proposal.storeKey)} may not be created`)
    }
    if (!exists && this.#visibleCount >= this.#maxStores) {
      throw new ZunoError('store_limit', `No more than ${this.#maxStores} stores`)
    }
    if (this.#maxStateBytes !== undefined && utf8Length(JSON.stringify(proposal.state)) > this.#maxStateBytes) {
      throw new ZunoError('state_too_large', `A state may take at most ${this.#maxStateBytes} bytes`)
    }
    const schema = schemaFor(this.#schemas, proposal.storeKey)
    if (schema !== undefined) proposal = { ...proposal, state: await validateState(schema, proposal.storeKey, proposal.state) }
    const outcome = await this.#storage.commit(proposal)
    if (outcome.type === 'conflict' && outcome.version === 0) {
      return { ...outcome, state: this.#declared.get(proposal.storeKey) }
    }
    return outcome
  }

  /** Id of the last event applied here: a snapshot taken now is current as of it. */
  get cursor(): string {
    return this.#readyLog().cursor
  }

  /** Every store (or those named, or those `readable` admits) as of the returned cursor. */
  snapshot(storeKeys?: readonly string[], readable?: (storeKey: string) => boolean): StateResponse {
    const cursor = this.cursor
    const stores: Record<string, StoreState> = {}
    const cells = storeKeys === undefined ? this.cells() : storeKeys.map((key) => this.existing(key))
    for (const cell of cells) {
      if (cell !== undefined && this.#isVisible(cell) && (readable === undefined || readable(cell.key))) {
        stores[cell.key] = { version: cell.version, state: cell.get() }
      }
    }
    return { stores, cursor }
  }

  /** Log entries after `eventId`, or `undefined` when a snapshot is needed instead. */
  since(eventId: string): LogEntry[] | undefined {
    return this.#readyLog().since(eventId)
  }

  /** Calls `listener` with each committed event after it is applied; returns the unsubscribe. */
  onCommit(listener: (entry: LogEntry) => void): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** Stops following the storage, and closes it if the universe made it. */
  async close(): Promise<void> {
    this.#stopCommits?.()
    this.#listeners.clear()
    if (this.#ownsStorage) await this.#storage.close()
  }

  protected async writeStore(cell: StoreCell<unknown>, next: Updater<unknown>): Promise<number> {
    if (!this.#started) await this.ready
    for (let attempt = 0; attempt < SERVER_WRITE_ATTEMPTS; attempt++) {
      this.#opId += 1
      const outcome = await this.propose(
        {
          storeKey: cell.key,
          baseVersion: cell.version,
          state: applyUpdater(next, cell.get()),
          clientId: this.#clientId,
          opId: this.#opId,
        },
        true,
      )
      if (outcome.type === 'accepted') return outcome.event.version
    }
    throw new ZunoError('conflict', `Gave up writing ${JSON.stringify(cell.key)} after ${SERVER_WRITE_ATTEMPTS} conflicts`)
  }

  #isVisible(cell: StoreCell<unknown>): boolean {
    return cell.version > 0 || this.#declared.has(cell.key)
  }

  /** Shows a committed state, counting the store once it becomes visible. */
  #publish(key: string, state: unknown, version: number): void {
    const cell = this.cell(key)
    const wasVisible = this.#isVisible(cell)
    cell.publish(state, version)
    if (!wasVisible && this.#isVisible(cell)) this.#visibleCount += 1
  }

  #arrive(event: CommittedEvent): void {
    this.#arrivals.push(event)
    if (this.#applying) return
    this.#applying = true
    try {
      for (let i = 0; i < this.#arrivals.length; i++) this.#apply(this.#arrivals[i] as CommittedEvent)
    } finally {
      this.#arrivals.length = 0
      this.#applying = false
    }
  }

  #apply(event: CommittedEvent): void {
    const log = this.#readyLog()
    if (event.seq <= log.lastSeq) return
    const entry = logEntry(event)
    log.append(entry)
    this.#publish(event.storeKey, event.state, event.version)
    for (const listener of this.#listeners) listener(entry)
  }
}

/** What the sync server needs of a universe: any authoritative universe, whatever its store types. */
export type ServedUniverse = Pick<AuthoritativeUniverse, 'ready' | 'cursor' | 'propose' | 'snapshot' | 'since' | 'onCommit'>

/** Creates the authoritative (server) universe; with `schemas`, `store(key)` is typed from them. */
export function createUniverse<S extends Schemas = Schemas>(
  options?: UniverseOptions<S>,
): AuthoritativeUniverse<Schemas extends S ? Record<string, unknown> : StatesOf<S>> {
  return new AuthoritativeUniverse(options)
}
