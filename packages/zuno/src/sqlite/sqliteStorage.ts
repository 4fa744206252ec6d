import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { ZunoError } from '../errors'
import { nodeFileSystem } from '../file/fileSystem'
import { type FolderLock, lockFolder } from '../file/folderLock'
import type { FsyncPolicy } from '../file/logFile'
import { randomId } from '../id'
import { formatEventId, type StoreState } from '../protocol'
import { utf8Length } from '../server/bytes'
import { type ClientRecord, type ClientRecordOptions, ClientLedger, clientKey } from '../server/clientLedger'
import { notifyEach } from '../server/notify'
import { createLocalBus } from '../server/signals'
import type {
  ActionCommitRequest,
  CommitOutcome,
  CommitRequest,
  CommittedChange,
  CommittedEvent,
  OpIdentity,
  RefusalAnswer,
  RefusalRequest,
  Storage,
  StorageHealth,
  StorageImage,
  StorageRead,
  Write,
} from '../server/storage'
import { writerTag } from '../writerTag'
import { openDatabase, type SqliteDatabase, type SqlRow } from './driver'
import { EventWindow } from './eventWindow'
import { FORMAT, prepareDatabase, prepareStatements, type Statements } from './schema'

export type { FsyncPolicy } from '../file/logFile'

/** Options of {@link createSqliteStorage}. */
export interface SqliteStorageOptions extends ClientRecordOptions {
  /** The folder for `zuno.db` (with its `-wal` and `-shm` files) and `lock`; created if missing. One process uses it at a time. */
  dir: string
  /**
   * When a commit reaches the disk, which decides what a power cut can lose. Default `'always'`:
   * SQLite's `synchronous = FULL`, the write-ahead log flushed before each acknowledgement.
   * `'interval'` is `synchronous = NORMAL` plus a checkpoint (which flushes) every `fsyncIntervalMs`;
   * `'never'` is `synchronous = OFF`. A crash of the process alone loses nothing under any of them.
   */
  fsync?: FsyncPolicy
  /** With `fsync: 'interval'`. Default 100. */
  fsyncIntervalMs?: number
  /** How many recent events a restarted server can still replay to resuming clients; the database keeps no more. Default 1,000. */
  recent?: number
  /** How many bytes (of their JSON) those recent events may take; the newest is kept whatever its size. Default 16 MiB. */
  recentBytes?: number
  /** While failed, how often to try to recover. Default 1,000 ms; 0: only on {@link SqliteStorage.recover}. */
  recoverEveryMs?: number
}

/** The SQLite storage: a {@link Storage} read lazily, that can also be asked to recover from a failure now. */
export interface SqliteStorage extends Storage {
  read(keys: readonly string[] | undefined): Promise<StorageRead>
  recent(): Promise<CommittedEvent[]>
  /** Decides and commits in this process: the outcome comes back at once, never as a promise. */
  commit(request: CommitRequest): CommitOutcome
  /** Decides and commits an action in this process: the outcome comes back at once. */
  commitAction(request: ActionCommitRequest): CommitOutcome
  health(): StorageHealth
  /** Tries now to leave `failed` (roll back, checkpoint, write a probe); returns whether healthy. */
  recover(): boolean
}

/** A store as the `head` statement reads it: no state. */
interface Head {
  version: number
  deleted: number
  deleted_at: number | null
}

/** One store's part of a commit, with its state as JSON. */
interface Change {
  storeKey: string
  version: number
  state: unknown
  /** `null` when deleted. */
  json: string | null
  stateBytes: number | undefined
  patch: Write['patch']
  deleted: boolean
  existed: boolean
}

/**
 * A durable, embedded storage in one SQLite database (WAL mode) per folder, held by one process.
 * It is read lazily: a start reads the epoch, the last seq, the store count, the client records and
 * the recent events, never the stores, which {@link SqliteStorage.read} reads when needed. Each
 * commit is one transaction (the stores, the event, the client's mark and answer, seq and count).
 * Runs on Node.js with better-sqlite3 12 and on Bun with `bun:sqlite`.
 */
export function createSqliteStorage(options: SqliteStorageOptions): SqliteStorage {
  const { dir } = options
  const fsync = options.fsync ?? 'always'
  if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'never') throw new RangeError(`fsync must be 'always', 'interval' or 'never', not ${String(fsync)}`)
  const recoverEveryMs = options.recoverEveryMs ?? 1000
  const newWindow = () => new EventWindow(options.recent ?? 1000, options.recentBytes ?? 16 * 1024 * 1024)
  let window = newWindow()
  const ledger = new ClientLedger(options)
  const now = ledger.now
  /** How often expired client records are deleted, within a commit's transaction. */
  const sweepEvery = Math.min(60_000, ledger.lifetimeMs / 4)

  const listeners = new Set<(event: CommittedEvent) => void>()
  const undelivered: CommittedEvent[] = []
  let db: SqliteDatabase | undefined
  let st: Statements | undefined
  let lock: FolderLock | undefined
  let opening: Promise<void> | undefined
  let epoch = ''
  let seq = 0
  /**
   * The seq of the last event this storage has (delivered, or from before the start): what a read
   * is as of. Behind `seq` only when a failed commit used a seq up (skipped, never an event): a
   * universe waiting for that seq would wait for good.
   */
  let eventSeq = 0
  let storeCount = 0
  /** The seqs of the recent events at start, read whole once the universe asks (`recent()`), after its start. */
  let recentSeqs: { first: number; last: number } | undefined
  let failure: string | undefined
  /** The seq of a commit that failed: it may be on disk, so it is never given to another event. */
  let doubtfulSeq = 0
  let sweptAt = Number.NEGATIVE_INFINITY
  let dirty = false
  let retryTimer: ReturnType<typeof setInterval> | undefined
  let flushTimer: ReturnType<typeof setInterval> | undefined

  const open = async () => {
    mkdirSync(dir, { recursive: true })
    // Another storage's data in the folder would otherwise be taken for no data at all: a new, empty history.
    for (const name of ['log.jsonl', 'snapshot.json']) {
      if (existsSync(join(dir, name))) throw new Error(`${dir} holds the file storage's data (${name}): the SQLite storage needs a folder of its own (Zuno does not migrate between them)`)
    }
    const held = lockFolder(nodeFileSystem, dir, 'SQLite storage')
    let opened: SqliteDatabase | undefined
    try {
      opened = await openDatabase(join(dir, 'zuno.db'))
      prepareDatabase(opened, fsync)
      const statements = prepareStatements(opened)
      const meta = statements.meta.get()
      if (meta === undefined) {
        epoch = randomId()
        statements.insertMeta.run(FORMAT, epoch, 0, 0)
      } else {
        if (meta.format !== FORMAT) throw new Error(`${dir} holds Zuno SQLite data of format ${meta.format}, which this version does not read (${FORMAT}): upgrade Zuno`)
        epoch = meta.epoch as string
        seq = meta.seq as number
        storeCount = meta.store_count as number
      }
      eventSeq = seq
      restoreClients(statements)
      // Opened again after a close: what the window knew is read again.
      window = newWindow()
      recentSeqs = readRecent(statements)
      failure = undefined
      db = opened
      st = statements
    } catch (error) {
      opened?.close()
      held.release()
      throw error
    }
    lock = held
    if (fsync === 'interval') {
      flushTimer = setInterval(flush, options.fsyncIntervalMs ?? 100)
      unref(flushTimer)
    }
  }

  const restoreClients = (s: Statements) => {
    const since = now() - ledger.lifetimeMs
    const records = new Map<string, ClientRecord>()
    for (const row of s.clients.all(since)) records.set(row.key as string, { mark: row.mark as number, seenAt: row.seen_at as number, answers: [] })
    for (const row of s.answers.all(since)) {
      records.get(row.client as string)?.answers.push({ opId: row.op_id as number, digest: row.digest as string, answer: JSON.parse(row.answer as string) })
    }
    ledger.restore(records)
  }

  /** The window learns the last events the bounds keep (their seqs and sizes); returns their range. */
  const readRecent = (s: Statements): { first: number; last: number } | undefined => {
    const rows = s.recentEvents.all(window.maxCount)
    let bytes = 0
    let kept = 0
    for (const row of rows) {
      bytes += row.bytes as number
      if (kept > 0 && bytes > window.maxBytes) break
      kept += 1
    }
    for (let i = kept - 1; i >= 0; i--) {
      const row = rows[i] as SqlRow
      window.restore(row.seq as number, row.bytes as number)
    }
    return kept === 0 ? undefined : { first: (rows[kept - 1] as SqlRow).seq as number, last: (rows[0] as SqlRow).seq as number }
  }

  /** The statements, once open and healthy; else throws `unavailable` (answered 503). */
  const ready = (): Statements => {
    if (st === undefined) throw new ZunoError('unavailable', `The SQLite storage in ${dir} is not open`, { retryAfter: 1 })
    if (failure !== undefined) throw new ZunoError('unavailable', `The storage failed: ${failure}`, { retryAfter: 1 })
    return st
  }

  const fail = (reason: string) => {
    failure = reason
    if (retryTimer === undefined && recoverEveryMs > 0) {
      retryTimer = setInterval(recover, recoverEveryMs)
      unref(retryTimer)
    }
  }

  /**
   * Runs `body` in one write transaction. Anything failing rolls it back and puts the storage in
   * `failed` (nothing of it acknowledged); `next`, the seq it gave an event, is then never reused.
   */
  const transact = (s: Statements, next: number | undefined, body: () => void) => {
    let began = false
    try {
      s.begin.run()
      began = true
      body()
      if (now() - sweptAt >= sweepEvery) {
        const expired = now() - ledger.lifetimeMs
        s.expiredAnswers.run(expired)
        s.expiredClients.run(expired)
      }
      s.commit.run()
    } catch (error) {
      try {
        if (db?.inTransaction) s.rollback.run()
      } catch {
        // Recovery rolls back again.
      }
      // Refused at BEGIN, nothing was written; past it, pages may have reached the write-ahead log.
      if (began && next !== undefined) doubtfulSeq = Math.max(doubtfulSeq, next)
      fail(`writing the database failed (${message(error)})`)
      throw new ZunoError('unavailable', `The storage failed: ${failure}`, { retryAfter: 1, cause: error })
    }
    if (sweptAt < now() - sweepEvery) sweptAt = now()
    if (fsync === 'interval') dirty = true
  }

  /** Writes what the client's record becomes once `op` is processed with `answer`. */
  const keepAnswer = (s: Statements, op: OpIdentity, answer: string, at: number) => {
    const key = clientKey(op)
    // Decided as a first op: no live record, so answers of an expired one must not carry over.
    if (op.opId === 1) s.forgetAnswers.run(key)
    s.writeClient.run(key, op.opId, at)
    s.insertAnswer.run(key, op.opId, op.digest, answer)
    if (op.opId > ledger.window) s.trimAnswers.run(key, op.opId - ledger.window)
  }

  const decide = (request: OpIdentity & { epoch: string }): CommitOutcome | undefined =>
    request.epoch !== epoch ? { type: 'epoch_changed', epoch } : ledger.decide(request)

  /** The conflict answer for a store that is not at the version the op or action saw. */
  const conflict = (s: Statements, storeKey: string, head: Head | undefined): Extract<CommitOutcome, { type: 'conflict' }> => {
    const version = head?.version ?? 0
    if (head?.deleted) return { type: 'conflict', version, state: undefined, deleted: true }
    return { type: 'conflict', version, state: head === undefined ? undefined : parseState(s.state.get(storeKey)?.state) }
  }

  const changeOf = (write: Write, head: Head | undefined): Change => {
    const { storeKey, state, stateBytes, patch } = write
    const deleted = write.deleted === true
    const json = deleted ? null : (JSON.stringify(state) ?? null)
    return { storeKey, version: (head?.version ?? 0) + 1, state: deleted ? undefined : state, json, stateBytes, patch, deleted, existed: head !== undefined && !head.deleted }
  }

  /** Commits changes (one at least) as the next event, durably, then tells the listeners. */
  const commitChanges = (s: Statements, op: OpIdentity, changes: Change[]): CommitOutcome => {
    const next = Math.max(seq, doubtfulSeq) + 1
    const event = eventOf(changes, writerTag(op.clientId), op.opId, next, epoch)
    const body = bodyOf(event, changes)
    const bytes = utf8Length(body)
    let count = storeCount
    for (const change of changes) count += (change.deleted ? 0 : 1) - (change.existed ? 1 : 0)
    const plan = window.plan(next, bytes)
    const at = now()
    const answer = JSON.stringify({ type: 'accepted', storeKey: event.storeKey, version: event.version, seq: next })
    transact(s, next, () => {
      for (const change of changes) {
        const deletedAt = change.deleted ? change.version : null
        s.writeStore.run(change.storeKey, change.version, change.deleted ? 1 : 0, deletedAt, change.json)
      }
      s.setMeta.run(next, count)
      s.insertEvent.run(next, bytes, body)
      if (plan.deleteTo !== undefined) s.trimEvents.run(plan.deleteTo)
      keepAnswer(s, op, answer, at)
    })
    seq = next
    storeCount = count
    window.apply(plan, next, bytes)
    ledger.recordAccepted(op, event.storeKey, event.version, next, at)
    deliver(event)
    return { type: 'accepted', event }
  }

  /** Records an answer that wrote no store (a refusal, an action that wrote nothing), durably. */
  const recordAnswer = (s: Statements, op: OpIdentity, answer: string): number => {
    const at = now()
    transact(s, undefined, () => keepAnswer(s, op, answer, at))
    return at
  }

  /**
   * Tells the listeners, in log order: a commit made by a listener meanwhile waits in line (the
   * same queue as StoreTable's).
   */
  const deliver = (event: CommittedEvent) => {
    eventSeq = event.seq
    if (listeners.size === 0) return
    undelivered.push(event)
    if (undelivered.length > 1) return
    try {
      for (let i = 0; i < undelivered.length; i++) notifyEach(listeners, undelivered[i] as CommittedEvent, 'a commit listener')
    } finally {
      undelivered.length = 0
    }
  }

  const flush = () => {
    if (!dirty || failure !== undefined || db === undefined) return
    try {
      // A checkpoint flushes the write-ahead log first: what it holds is then on disk.
      db.exec('PRAGMA wal_checkpoint(PASSIVE)')
      dirty = false
    } catch (error) {
      fail(`flushing the database failed (${message(error)})`)
    }
  }

  /**
   * Leaves `failed` if the disk takes writes again: rolls back what is left of the failed
   * transaction, checkpoints (a full write-ahead log starts over), and commits a probe. A failed
   * commit's seq is then skipped, durably, by that probe: its frames may have reached the disk, and
   * its id must never name another change. A commit that did land after all (the database says so)
   * is taken in: its client's answer is read back and the listeners hear it.
   */
  const recover = (): boolean => {
    if (failure === undefined) return true
    const s = st
    if (s === undefined || db === undefined) return false
    try {
      if (db.inTransaction) s.rollback.run()
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
      const meta = s.meta.get() as SqlRow
      const stored = meta.seq as number
      const target = Math.max(stored, doubtfulSeq)
      s.begin.run()
      try {
        s.setMeta.run(target, meta.store_count as number)
        s.commit.run()
      } catch (error) {
        if (db.inTransaction) s.rollback.run()
        throw error
      }
      if (stored > seq) {
        restoreClients(s)
        storeCount = meta.store_count as number
        for (const row of s.eventsAfter.all(seq)) {
          const landed = parseEvent(epoch, row.seq as number, row.body as string, row.bytes as number)
          window.apply(window.plan(landed.seq, row.bytes as number), landed.seq, row.bytes as number)
          seq = landed.seq
          deliver(landed)
        }
      }
      seq = target
    } catch {
      return false
    }
    failure = undefined
    if (retryTimer !== undefined) clearInterval(retryTimer)
    retryTimer = undefined
    return true
  }

  return {
    async load(): Promise<StorageImage> {
      if (st === undefined) {
        opening ??= open().finally(() => {
          opening = undefined
        })
        await opening
      }
      return { epoch, seq, stores: new Map(), storeCount }
    },

    async recent(): Promise<CommittedEvent[]> {
      // Handed over once: the universe keeps its own resume log from here. Those trimmed since are gone.
      const range = recentSeqs
      recentSeqs = undefined
      if (range === undefined) return []
      return ready()
        .eventsBetween.all(range.first, range.last)
        .map((row) => parseEvent(epoch, row.seq as number, row.body as string, row.bytes as number))
    },

    async read(keys: readonly string[] | undefined): Promise<StorageRead> {
      const s = st
      if (s === undefined) throw new ZunoError('unavailable', `The SQLite storage in ${dir} is not open`, { retryAfter: 1 })
      const stores = new Map<string, StoreState>()
      let at: number
      let readEpoch: string
      try {
        s.beginRead.run()
        try {
          const meta = s.meta.get() as SqlRow
          at = Math.min(meta.seq as number, eventSeq)
          readEpoch = meta.epoch as string
          if (keys === undefined) {
            for (const row of s.allStores.all()) stores.set(row.key as string, stateOf(row))
          } else {
            for (const key of keys) {
              const row = s.store.get(key)
              if (row !== undefined) stores.set(key, stateOf(row))
            }
          }
        } finally {
          s.commit.run()
        }
      } catch (error) {
        throw new ZunoError('unavailable', `Reading the SQLite storage in ${dir} failed (${message(error)})`, { retryAfter: 1, cause: error })
      }
      return { epoch: readEpoch, seq: at, stores }
    },

    commit(request: CommitRequest): CommitOutcome {
      const s = ready()
      const decided = decide(request)
      if (decided !== undefined) return decided
      const { storeKey, baseVersion } = request.write
      const head = s.head.get(storeKey) as Head | undefined
      const version = head?.version ?? 0
      if (baseVersion !== version) {
        const outcome = conflict(s, storeKey, head)
        // Created again since: an op made on the store that was deleted is told so.
        const deletedAt = head?.deleted_at
        if (!outcome.deleted && deletedAt != null && baseVersion < deletedAt) outcome.deletedAt = deletedAt
        return outcome
      }
      return commitChanges(s, request, [changeOf(request.write, head)])
    },

    commitAction(request: ActionCommitRequest): CommitOutcome {
      const s = ready()
      const decided = decide(request)
      if (decided !== undefined) return decided
      const heads: Array<Head | undefined> = []
      for (const { storeKey, baseVersion } of request.writes) {
        const head = s.head.get(storeKey) as Head | undefined
        if ((head?.version ?? 0) !== baseVersion) return { ...conflict(s, storeKey, head), storeKey }
        heads.push(head)
      }
      for (const { storeKey, version } of request.reads) {
        const head = s.head.get(storeKey) as Head | undefined
        if ((head?.version ?? 0) !== version) return { ...conflict(s, storeKey, head), storeKey }
      }
      if (request.writes.length === 0) {
        // Store key '' names no store: the kept answer says "accepted, nothing written".
        const at = recordAnswer(s, request, JSON.stringify({ type: 'accepted', storeKey: '', version: 0, seq }))
        ledger.recordAccepted(request, '', 0, seq, at)
        return { type: 'unchanged', seq }
      }
      return commitChanges(
        s,
        request,
        request.writes.map((write, i) => changeOf(write, heads[i])),
      )
    },

    async refuse(request: RefusalRequest): Promise<CommitOutcome> {
      const s = ready()
      const decided = decide(request)
      if (decided !== undefined) return decided
      const { storeKey, error, message, issues } = request
      const answer: RefusalAnswer = { type: 'refused', storeKey, error, message, ...(issues === undefined ? {} : { issues }) }
      const at = recordAnswer(s, request, JSON.stringify(answer))
      ledger.recordRefused(request, answer, at)
      return { type: 'answered', answer }
    },

    onCommit(listener) {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },

    // One process holds the folder: its universes are the only instances.
    bus: createLocalBus(),

    health: () => (failure === undefined ? { ok: true } : { ok: false, reason: failure }),

    recover,

    async close() {
      // A start still under way finishes first, so its database and lock are released here too.
      await opening?.catch(() => {})
      listeners.clear()
      if (flushTimer !== undefined) clearInterval(flushTimer)
      if (retryTimer !== undefined) clearInterval(retryTimer)
      flushTimer = retryTimer = undefined
      try {
        if (db?.inTransaction) st?.rollback.run()
        db?.close()
      } finally {
        db = undefined
        st = undefined
        lock?.release()
        lock = undefined
      }
    },
  }
}

/** A `stores` row as the universe holds a store; a deletion kept after a re-creation stays as `deletedAt`. */
function stateOf(row: SqlRow): StoreState {
  const version = row.version as number
  const deletedAt = row.deleted_at as number | null
  if (row.deleted) return { version, state: undefined, deleted: true, deletedAt: deletedAt ?? version }
  const state: StoreState = { version, state: parseState(row.state) }
  if (deletedAt !== null) state.deletedAt = deletedAt
  return state
}

function parseState(json: unknown): unknown {
  return typeof json === 'string' ? JSON.parse(json) : undefined
}

/** The event of a commit; `changes` only with several stores, as the other storages make them. */
function eventOf(changes: Change[], writer: string, opId: number, seq: number, epoch: string): CommittedEvent {
  const [first] = changes as [Change, ...Change[]]
  const id = formatEventId(epoch, seq)
  if (changes.length === 1) {
    const event: CommittedEvent = { storeKey: first.storeKey, version: first.version, state: first.state, writer, opId, seq, id, existed: first.existed }
    if (first.stateBytes !== undefined) event.stateBytes = first.stateBytes
    if (first.patch !== undefined) event.patch = first.patch
    if (first.deleted) event.deleted = true
    return event
  }
  let bytes = 0
  const committed: CommittedChange[] = changes.map(({ storeKey, version, state, stateBytes, patch, deleted, existed }) => {
    bytes += stateBytes ?? 0
    if (deleted) return { storeKey, version, state: undefined, deleted: true, existed }
    const change: CommittedChange = { storeKey, version, state, existed }
    if (stateBytes !== undefined) change.stateBytes = stateBytes
    if (patch !== undefined) change.patch = patch
    return change
  })
  return { storeKey: first.storeKey, version: first.version, state: first.state, writer, opId, seq, id, stateBytes: bytes, existed: first.existed, changes: committed }
}

/**
 * An event as its row keeps it: `[event without states, state JSON…]`, the states spliced in as
 * the JSON already made for the `stores` rows rather than encoded a second time.
 */
function bodyOf(event: CommittedEvent, changes: Change[]): string {
  const { state: _, id: __, seq: ___, changes: committed, ...rest } = event
  const head = committed === undefined ? rest : { ...rest, changes: committed.map(({ state: _state, ...change }) => change) }
  let body = `[${JSON.stringify(head)}`
  for (const change of changes) body += `,${change.json ?? 'null'}`
  return `${body}]`
}

function parseEvent(epoch: string, seq: number, body: string, bytes: number): CommittedEvent {
  const [head, ...states] = JSON.parse(body) as [Omit<CommittedEvent, 'state' | 'seq' | 'id'>, ...unknown[]]
  const changes = head.changes?.map((change, i) => ({ ...change, state: change.deleted ? undefined : states[i] }))
  const event = { ...head, state: head.deleted ? undefined : states[0], seq, id: formatEventId(epoch, seq) } as CommittedEvent
  if (changes !== undefined) event.changes = changes
  // Measured by its row, so the resume log need not encode a frame per event to count it at start.
  event.stateBytes ??= bytes
  return event
}

function unref(timer: ReturnType<typeof setInterval>): void {
  ;(timer as { unref?: () => void }).unref?.()
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
