import type { Patch } from '../patch'
import type { ErrorCode, SchemaIssue, StoreState } from '../protocol'

/** Who sent an op, and which op it is: the key of exactly-once. */
export interface OpIdentity {
  /** The authenticated principal's id; `''` when the server has no `authenticate`. */
  principal: string
  /** The client's id, unique within its principal. */
  clientId: string
  /** 1, 2, 3, … per client, in the order the client issued its ops. */
  opId: number
  /** Identifies the op's content (store, base, state): a reused opId with other content is refused. */
  digest: string
  /**
   * On a retry of an op in doubt: how long ago it was first sent. With no record of the client, a
   * storage answers `unknown_client` when a record of an earlier attempt could have expired since
   * (at least half the client lifetime), instead of taking it as the client's first op.
   */
  resentAfterMs?: number | undefined
}

/** One write of an op: the next state of a store, on the version it was computed on. */
export interface Write {
  /** The store to write. */
  storeKey: string
  /** The version the state was computed on; the write stands only if it is still current. */
  baseVersion: number
  /** The next state, whole. */
  state: unknown
  /** About how many bytes the state takes as JSON, when the caller measured it (no storage need encode it to know). */
  stateBytes?: number | undefined
  /**
   * What changed from the state at `baseVersion`, when the universe knows it: kept on the event, so
   * streams can carry it instead of the state. A storage that drops it loses no data (streams then carry the state).
   */
  patch?: Patch | undefined
  /** The write deletes the store (`state` is then `undefined`): its version moves on, and a later write creates it again. */
  deleted?: boolean | undefined
}

/** An op to commit: accepted iff `epoch` is the storage's and `baseVersion` the store's current version. */
export interface CommitRequest extends OpIdentity {
  /** The epoch the op was made in. */
  epoch: string
  /** What the op writes. */
  write: Write
}

/** A store an action read without writing it: the action's commit stands only if it is still at `version`. */
export interface ReadCheck {
  /** The store read. */
  storeKey: string
  /** The version the action saw. */
  version: number
}

/**
 * An action to commit as one change: accepted iff `epoch` is the storage's, every write's
 * `baseVersion` is its store's current version and every read store is still at the version read.
 * The writes then land together, as one event (one seq) in the log, or none does. An action that
 * wrote nothing is recorded all the same: its op is processed.
 */
export interface ActionCommitRequest extends OpIdentity {
  /** The epoch the op was made in. */
  epoch: string
  /** Every store the action wrote, in the order it first wrote them; may be empty. */
  writes: readonly Write[]
  /** The stores it only read, with the versions it saw. */
  reads: readonly ReadCheck[]
}

/** A refusal for good of an op, recorded like an acceptance: the client's mark moves past it. */
export interface RefusalRequest extends OpIdentity {
  /** The epoch the op was made in. */
  epoch: string
  /** The store the op wrote. */
  storeKey: string
  /** Why it was refused. */
  error: RefusalAnswer['error']
  /** The refusal in words, kept so a retry is told the same. */
  message: string
  /** With `invalid_state`: what the schema found wrong. */
  issues?: readonly SchemaIssue[]
}

/** What a processed op was answered; kept per client, so a retry gets the same answer. */
export type OpAnswer =
  /**
   * `seq` places the write in the log. `state` is there when the storage has it at hand (Redis reads
   * it back from its Stream); the in-process storages keep no copy of every client's last state.
   */
  | {
      /** The kind of answer. */
      type: 'accepted'
      /** The store written. */
      storeKey: string
      /** The version the op made. */
      version: number
      /** The event's place in the log. */
      seq: number
      /** The state the op made, when the storage has it at hand. */
      state?: unknown
    }
  | RefusalAnswer

/** The answer to an op refused for good. */
export interface RefusalAnswer {
  /** The kind of answer. */
  type: 'refused'
  /** The store the op wrote. */
  storeKey: string
  /** Why it was refused. */
  error: ErrorCode
  /** The refusal in words. */
  message: string
  /** With `invalid_state`: what the schema found wrong. */
  issues?: readonly SchemaIssue[]
}

/** One store's part of a commit that changed several stores. */
export interface CommittedChange {
  /** The store that changed. */
  storeKey: string
  /** Its new version. */
  version: number
  /** Its new state. */
  state: unknown
  /** About how many bytes the state takes as JSON, when known. */
  stateBytes?: number | undefined
  /** What changed from the store's previous version, when known. */
  patch?: Patch | undefined
  /** The change deleted the store. */
  deleted?: boolean | undefined
  /** Whether the store existed (written and not deleted) just before this change (see {@link CommittedEvent.existed}). */
  existed?: boolean | undefined
}

/**
 * An accepted change with its place in the universe-wide log. A commit that changed several stores
 * (an action's) lists them all in `changes`; `storeKey`, `version`, `state` and `stateBytes` then
 * repeat its first one, and `stateBytes` counts them all.
 */
export interface CommittedEvent {
  /** The store that changed. */
  storeKey: string
  /** Its new version. */
  version: number
  /** Its new state. */
  state: unknown
  /** The writer's public tag (`writerTag(clientId)`). */
  writer: string
  /** The writer's op number. */
  opId: number
  /** About how many bytes the state takes as JSON, when known: the resume log counts it without encoding a frame. */
  stateBytes?: number | undefined
  /** What changed from the store's previous version, when known (see {@link Write.patch}). */
  patch?: Patch | undefined
  /** The change deleted the store (see {@link Write.deleted}). */
  deleted?: boolean | undefined
  /**
   * Whether the store existed (written and not deleted) just before this change. A storage with
   * {@link Storage.read} sets it: a universe that does not hold the store counts the stores that
   * exist (`maxStores`) from it. With `changes`, each change tells its own. An event that does not
   * say (written by an older release) is guessed from its version, and the universe asks
   * {@link Storage.count} once such events stop.
   */
  existed?: boolean | undefined
  /** With a commit of several stores: each of them, the first being the one named above. Absent for one store. */
  changes?: readonly CommittedChange[] | undefined
  /** Universe-wide, strictly increasing; 1 for the first change of an epoch. */
  seq: number
  /**
   * The event id clients resume from: `<epoch>-<seq>`. The in-process storages' events spell it out
   * when read (a getter, kept by `JSON.stringify`): a copy made with a spread or `structuredClone` lacks it.
   */
  id: string
}

/** What became of an op. */
export type CommitOutcome =
  | {
      /** The kind of outcome. */
      type: 'accepted'
      /** What was committed. */
      event: CommittedEvent
    }
  /** The op was processed before; this is its kept answer (the same one, for a refusal just recorded). */
  | {
      /** The kind of outcome. */
      type: 'answered'
      /** The kept answer. */
      answer: OpAnswer
    }
  /** An action that wrote nothing was accepted; `seq` is the last event before it was decided. */
  | {
      /** The kind of outcome. */
      type: 'unchanged'
      /** The log's position when it was decided. */
      seq: number
    }
  /** The op was processed before and its answer is no longer kept: answer with the store's current truth. */
  | {
      /** The kind of outcome. */
      type: 'processed'
    }
  /** The opId was processed with other content. */
  | {
      /** The kind of outcome. */
      type: 'reused'
    }
  /** `baseVersion` was stale: here is the current state. Nothing was recorded. */
  | {
      /** The kind of outcome. */
      type: 'conflict'
      /** The store's current version. */
      version: number
      /** The store's current state. */
      state: unknown
      /** The store is deleted (at `version`). */
      deleted?: boolean
      /** The store was deleted at this version, after the op's base, and created again since: the op was made on the store that was deleted. */
      deletedAt?: number
      /** With an action: which store moved (the first found), so the universe can run it again on that state at once. */
      storeKey?: string
    }
  /** The storage keeps no record of this client and the op is not its first. */
  | {
      /** The kind of outcome. */
      type: 'unknown_client'
    }
  /** The op was made in another epoch than the storage's. */
  | {
      /** The kind of outcome. */
      type: 'epoch_changed'
      /** The storage's epoch, which the client must move to. */
      epoch: string
    }

/** What a storage holds when a universe starts on it. */
export interface StorageImage {
  /** Identifies this history; ids of another epoch are never taken for this one's. */
  epoch: string
  /** Sequence number of the last committed event (0 when none). */
  seq: number
  /** Every store as of `seq`; a storage with {@link Storage.read} may leave out any (it is then read when first needed). */
  stores: Map<string, StoreState>
  /** With {@link Storage.read}: how many stores exist (written and not deleted) as of `seq`, which `maxStores` counts from. */
  storeCount?: number
  /** The last events before `seq`, oldest first, if the storage keeps them: clients can then resume across a restart. */
  recent?: CommittedEvent[]
}

/** Stores read from a storage, as of one position of its log. */
export interface StorageRead {
  /** The epoch of the history read: a read of another than the universe's is never shown. */
  epoch: string
  /** The storage's position they were read at: the seq of the last event they include. */
  seq: number
  /** Each store asked for that the storage has, tombstones included (`{ version, deleted: true }`); a key never written is absent. */
  stores: Map<string, StoreState>
}

/** How many stores exist, as of one position of a storage's log. */
export interface StorageCount {
  /** The epoch of the history counted: a count of another than the universe's is never used. */
  epoch: string
  /** The seq of the last event the count includes. */
  seq: number
  /** Stores written and not deleted, as of `seq`. */
  storeCount: number
}

/** Whether a storage can take writes. */
export type StorageHealth =
  | {
      /** Takes writes. */
      ok: true
    }
  | {
      /** Refuses writes until it recovers. */
      ok: false
      /** What failed, for the 503's message and the logs. */
      reason: string
    }

/**
 * Where an authoritative universe keeps its truth. `commit` is the one atomic step of the
 * protocol: check the client's mark, compare the version, write the state, advance the mark and
 * keep the answer, and append to the log, all or nothing. Implementations: memory (default), the
 * file log (`zuno/file`) and Redis (`zuno-redis`); `docs/design/protocol-v2.md` gives the contract.
 */
export interface Storage {
  /** Reads the current image once, when the universe starts. */
  load(): Promise<StorageImage>
  /**
   * Reads the stores named (every store, with `undefined`) as of one position of the log, in one
   * consistent read. A storage that has it is read lazily: `load()` need return no stores and must
   * give `storeCount`, its events tell {@link CommittedEvent.existed}, and the universe keeps only
   * a bounded set of stores in memory, reading the others when first needed.
   */
  read?(keys: readonly string[] | undefined): Promise<StorageRead>
  /**
   * The events just before the position the last `load()` gave, oldest first, as far back as the
   * storage keeps them: {@link StorageImage.recent}, fetched once the universe is ready rather than
   * before. A storage that has it leaves `recent` out of its image, and a start does not wait for
   * its history: until they arrive, a client resuming from before the start gets a snapshot.
   */
  recent?(): Promise<CommittedEvent[]>
  /**
   * How many stores exist (written and not deleted) as of one position of the log, exactly. A
   * storage read lazily whose events may lack {@link CommittedEvent.existed} (others of an older
   * release write beside it) has it: the universe, which had to guess for those events, corrects
   * its count (`maxStores`) from it.
   */
  count?(): Promise<StorageCount>
  /**
   * Decides and, if accepted, commits one op. Fails (rejects, or throws) only when the storage
   * failed, and then nothing was acknowledged. A storage that decides in this process may return
   * the outcome itself instead of a promise: the proposal then costs no extra turn.
   */
  commit(request: CommitRequest): CommitOutcome | Promise<CommitOutcome>
  /**
   * Decides and, if accepted, commits an action's writes as one change (see {@link ActionCommitRequest}).
   * A `conflict` outcome means a store moved since the action read it: the universe runs the action
   * again. Storages without it cannot run actions (the universe answers `unavailable`).
   */
  commitAction?(request: ActionCommitRequest): CommitOutcome | Promise<CommitOutcome>
  /** Records a refusal for good, unless the op was processed already (then that answer comes back). */
  refuse(request: RefusalRequest): Promise<CommitOutcome>
  /**
   * Calls `listener` with every committed event, in log order, including those committed
   * through other instances sharing the storage. Returns the function that stops it.
   */
  onCommit(listener: (event: CommittedEvent) => void): () => void
  /**
   * Calls `listener` when the storage's history changed under a running universe: it moved to a
   * new epoch (Redis lost data, say). The universe then loads the storage again and every stream
   * starts over from a snapshot. Storages whose epoch never changes while open need not have it.
   */
  onReset?(listener: () => void): () => void
  /** Whether the storage takes writes now; a failed one is answered 503 until it recovers. Default: ok. */
  health?(): StorageHealth
  /**
   * Signals between the instances that share this storage (see {@link InstanceBus}). Default: none,
   * so a universe knows of its own instance only (right for a storage only one process opens).
   */
  readonly bus?: InstanceBus
  /** Releases resources. */
  close(): Promise<void>
}

/**
 * Signals between the instances that share a storage. Nothing on it is data: no state, and nothing
 * kept. It carries what one instance must tell the others of the streams they hold: a control
 * request (`POST /subscribe`) that reached another instance than the stream's, and revocations.
 * Redis carries it on pub/sub; a storage of one process needs none. Best effort: a message may be
 * lost while an instance is cut off, so whatever rides on it has a fallback (a client reconnects).
 */
export interface InstanceBus {
  /** Sends `message` to every instance on the bus, this one included. */
  publish(message: string): void | Promise<void>
  /**
   * Calls `listener` with every message published on the bus; returns the function that stops it.
   * `lost`, where given, is called when messages may have been lost (the bus reconnected), once it
   * hears again: what rode on them is done over (every stream's rights are asked again).
   */
  subscribe(listener: (message: string) => void, lost?: () => void): () => void
}
