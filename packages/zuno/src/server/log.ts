import { formatEventId, parseEventId } from '../protocol'
import { encodeEventFrame, hasPatch } from './sse'
import type { Patch } from '../patch'
import type { CommittedChange, CommittedEvent } from './storage'

/** A retained event and its SSE frame, encoded once and shared by every subscriber and replay. */
export interface LogEntry {
  /** The change itself. */
  readonly event: CommittedEvent
  /** Its SSE frame, encoded once and written as is to every subscriber that reads patches. */
  readonly frame: Uint8Array
  /** The same with every change whole, for streams whose client does not read patches (the same bytes when it has none). */
  readonly wholeFrame: Uint8Array
}

/** The log entry of an event; its frame is encoded when first read, so never when nobody streams. */
export function logEntry(event: CommittedEvent): LogEntry {
  return event instanceof LoggedEvent ? event : new LazyEntry(event)
}

/** A class rather than an object literal with a getter: one small object per commit, no closure. */
class LazyEntry implements LogEntry {
  #frame: Uint8Array | undefined
  #wholeFrame: Uint8Array | undefined

  constructor(readonly event: CommittedEvent) {}

  get frame(): Uint8Array {
    return (this.#frame ??= encodeEventFrame(this.event))
  }

  get wholeFrame(): Uint8Array {
    return (this.#wholeFrame ??= hasPatch(this.event) ? encodeEventFrame(this.event, false) : this.frame)
  }
}

/**
 * An event that is its own log entry, as the in-process storages make them. The resume log keeps
 * thousands of events, each until it is pushed out, so each is one object: no entry around it,
 * and its id spelled out when read (for a frame) rather than kept as a string per event. Kept
 * objects are what a collection copies and marks; one per event instead of three made the memory
 * storage's proposals an eighth cheaper.
 */
export class LoggedEvent implements CommittedEvent, LogEntry {
  #frame: Uint8Array | undefined
  #wholeFrame: Uint8Array | undefined
  /** The epoch of the history the event belongs to; private, so a spread (the file storage's log line) does not take it. */
  readonly #epoch: string

  constructor(
    readonly storeKey: string,
    readonly version: number,
    readonly state: unknown,
    readonly writer: string,
    readonly opId: number,
    readonly seq: number,
    readonly stateBytes: number | undefined,
    epoch: string,
    readonly changes?: readonly CommittedChange[],
    readonly patch?: Patch,
    /** Whether the change deleted the store; a plain field, so the file storage's log line keeps it. */
    readonly deleted?: boolean,
    /** Whether the store existed just before (told by storages read lazily; see {@link CommittedEvent.existed}). */
    readonly existed?: boolean,
  ) {
    this.#epoch = epoch
  }

  /** `<epoch>-<seq>`. */
  get id(): string {
    return formatEventId(this.#epoch, this.seq)
  }

  /** As JSON, the event as a plain `CommittedEvent` (with its `id`), as storages made them before. */
  toJSON(): CommittedEvent {
    const { storeKey, version, state, writer, opId, seq, stateBytes } = this
    const plain: CommittedEvent = { storeKey, version, state, writer, opId, seq, id: this.id }
    if (stateBytes !== undefined) plain.stateBytes = stateBytes
    if (this.changes !== undefined) plain.changes = this.changes
    if (this.deleted) plain.deleted = true
    return plain
  }

  get event(): CommittedEvent {
    return this
  }

  get frame(): Uint8Array {
    return (this.#frame ??= encodeEventFrame(this))
  }

  get wholeFrame(): Uint8Array {
    return (this.#wholeFrame ??= hasPatch(this) ? encodeEventFrame(this, false) : this.frame)
  }
}

/**
 * The recent part of the versioned log, kept in memory to serve resumes: a ring of the last
 * `retention` events (fewer when they would take more than `retentionBytes` as frames), indexed by
 * sequence number, so appends and lookups are O(1).
 */
export class EventLog {
  readonly #ring: Array<LogEntry | undefined>
  /** The frame size of each kept entry, at the same index. */
  readonly #sizes: Float64Array
  #lastSeq: number
  #count = 0
  #bytes = 0

  constructor(
    /** Epoch of the storage the events come from. */
    readonly epoch: string,
    /** Sequence number of the last event committed before this log started. */
    lastSeq: number,
    /** How many events are kept. */
    readonly retention: number,
    /** How many bytes of frames are kept; the newest event is kept whatever its size. */
    readonly retentionBytes: number = Number.POSITIVE_INFINITY,
  ) {
    if (!Number.isSafeInteger(retention) || retention < 1) {
      throw new RangeError('retention must be a positive integer')
    }
    if (!(retentionBytes > 0)) throw new RangeError('retentionBytes must be positive')
    this.#ring = new Array<LogEntry | undefined>(retention)
    this.#sizes = new Float64Array(retention)
    this.#lastSeq = lastSeq
  }

  /** Bytes of frames kept. */
  get bytes(): number {
    return this.#bytes
  }

  /** Events kept. */
  get size(): number {
    return this.#count
  }

  /** Id of the last event; a snapshot taken now is current as of this id. */
  get cursor(): string {
    return formatEventId(this.epoch, this.#lastSeq)
  }

  /** Sequence number of the last event. */
  get lastSeq(): number {
    return this.#lastSeq
  }

  /**
   * Puts back events from before the first one kept (the history a storage reads after a start),
   * oldest first and ending just before it; as many of the newest of them as the bounds leave room
   * for. Returns how many were kept.
   */
  backfill(entries: readonly LogEntry[]): number {
    let first = this.#lastSeq - this.#count
    let kept = 0
    for (let i = entries.length - 1; i >= 0 && this.#count < this.retention; i--) {
      const entry = entries[i] as LogEntry
      if (entry.event.seq !== first) break
      const { stateBytes } = entry.event
      const size = this.retentionBytes === Number.POSITIVE_INFINITY ? 0 : stateBytes !== undefined ? stateBytes + 100 : entry.frame.byteLength
      if (this.#bytes + size > this.retentionBytes) break
      const slot = first % this.retention
      this.#ring[slot] = entry
      this.#sizes[slot] = size
      this.#count += 1
      this.#bytes += size
      first -= 1
      kept += 1
    }
    return kept
  }

  /** Appends the next event; events must arrive in sequence order. */
  append(entry: LogEntry): void {
    const { seq } = entry.event
    if (seq !== this.#lastSeq + 1) {
      // A gap (say, events trimmed by another instance) makes older ids unservable.
      this.#ring.fill(undefined)
      this.#count = 0
      this.#bytes = 0
    }
    if (this.#count === this.retention) this.#dropOldest()
    const slot = seq % this.retention
    // A measured state saves encoding a frame nobody may ever stream (100 bytes for the frame's fields).
    const { stateBytes } = entry.event
    const size = this.retentionBytes === Number.POSITIVE_INFINITY ? 0 : stateBytes !== undefined ? stateBytes + 100 : entry.frame.byteLength
    this.#ring[slot] = entry
    this.#sizes[slot] = size
    this.#lastSeq = seq
    this.#count += 1
    this.#bytes += size
    while (this.#bytes > this.retentionBytes && this.#count > 1) this.#dropOldest()
  }

  #dropOldest(): void {
    const slot = (this.#lastSeq - this.#count + 1) % this.retention
    this.#bytes -= this.#sizes[slot] as number
    this.#ring[slot] = undefined
    this.#sizes[slot] = 0
    this.#count -= 1
  }

  /** The entry of event `seq`, if it is still kept. */
  at(seq: number): LogEntry | undefined {
    if (seq > this.#lastSeq || seq <= this.#lastSeq - this.#count) return undefined
    return this.#ring[seq % this.retention]
  }

  /**
   * Every entry after `id`, oldest first, or `undefined` when they can no longer be served:
   * an id of another epoch, one from the future, one older than the retention, or not an id.
   */
  since(id: string): LogEntry[] | undefined {
    const parsed = parseEventId(id)
    if (parsed === undefined || parsed.epoch !== this.epoch) return undefined
    const oldestSeq = this.#lastSeq - this.#count + 1
    if (parsed.seq > this.#lastSeq || parsed.seq < oldestSeq - 1) return undefined
    const entries: LogEntry[] = []
    for (let seq = parsed.seq + 1; seq <= this.#lastSeq; seq++) {
      entries.push(this.#ring[seq % this.retention] as LogEntry)
    }
    return entries
  }
}
