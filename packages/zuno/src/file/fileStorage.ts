import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ZunoError } from '../errors'
import { randomId } from '../id'
import { formatEventId } from '../protocol'
import { writerTag } from '../writerTag'
import { ClientLedger, type ClientRecordOptions } from '../server/clientLedger'
import type { ActionCommitRequest, CommitOutcome, CommitRequest, CommittedEvent, OpIdentity, RefusalRequest, Storage, StorageHealth, StorageImage } from '../server/storage'
import { createLocalBus } from '../server/signals'
import { copyStates, StoreTable } from '../server/storeTable'
import { errorCode, type FileSystem, nodeFileSystem } from './fileSystem'
import { type FolderLock, lockFolder } from './folderLock'
import { type FsyncPolicy, LogFile } from './logFile'
import { readLog } from './logReader'
import { RecentEvents } from './recentEvents'
import { FORMAT, readSnapshot, type Snapshot, writeFileWhole, writeSnapshot } from './snapshot'

export type { FsyncPolicy } from './logFile'
export type { FileSystem } from './fileSystem'

/** Options of {@link createFileStorage}. */
export interface FileStorageOptions extends ClientRecordOptions {
  /** The folder for `snapshot.json`, `log.jsonl` and `lock`; created if missing. One process uses it at a time. */
  dir: string
  /** When a write reaches the disk, which decides what a power cut can lose. Default `'always'`. */
  fsync?: FsyncPolicy
  /** With `fsync: 'interval'`. Default 100. */
  fsyncIntervalMs?: number
  /** Write a snapshot and start a fresh log after this many log lines. Default 10,000. */
  snapshotEvery?: number
  /**
   * Also write a snapshot once the log is larger than `logRatio` × the last snapshot plus
   * `logFloorBytes`, so the folder follows the live state, not its history. Default 4.
   */
  logRatio?: number
  /** The part of that threshold that does not grow with the state, so a tiny state does not compact at every write. Default 8 MiB. */
  logFloorBytes?: number
  /** How many recent events a restarted server can still replay to resuming clients. Default 1,000. */
  recent?: number
  /** How many bytes (of log lines) those recent events may take. Default 16 MiB. */
  recentBytes?: number
  /** While failed, how often to try to recover. Default 1,000 ms; 0: only on {@link FileStorage.recover}. */
  recoverEveryMs?: number
  /** The file-system calls; default `node:fs`. For tests that make a write or a flush fail. */
  fs?: FileSystem
}

/** The file storage: a {@link Storage} that can also be asked to recover from a failure now. */
export interface FileStorage extends Storage {
  health(): StorageHealth
  /** Tries now to leave `failed` (cut the log back to its last good length, flush); returns whether healthy. */
  recover(): boolean
}

/** One line of the log: a committed event with its op's identity, a refusal for good, or an action that wrote nothing. */
type LogLine =
  | (Omit<CommittedEvent, 'id'> & OpIdentity & { at: number })
  | { refusal: RefusalRequest; at: number }
  | { unchanged: OpIdentity; seq: number; at: number }

/**
 * A durable, embedded storage: an append-only log of JSON lines plus a snapshot, in one folder
 * held by one process, with no dependencies; it runs on Node.js and on Bun. Recovery reads the
 * snapshot and replays the log after it, and cuts a torn last line (a crash mid-write: never
 * acknowledged). The epoch is kept, so event ids stay valid across restarts. A write or flush that
 * fails is not acknowledged and puts the storage in `failed` until the log is cut back to its last
 * good length.
 */
export function createFileStorage(options: FileStorageOptions): FileStorage {
  const { dir } = options
  const fs = options.fs ?? nodeFileSystem
  const snapshotEvery = options.snapshotEvery ?? 10_000
  const logRatio = options.logRatio ?? 4
  const logFloorBytes = options.logFloorBytes ?? 8 * 1024 * 1024
  const logPath = join(dir, 'log.jsonl')

  const ledger = new ClientLedger(options)
  const now = ledger.now
  const table = new StoreTable(ledger)
  let recent: CommittedEvent[] = []
  let epoch = ''
  let seq = 0
  let linesSinceSnapshot = 0
  let snapshotBytes = 0
  /** After a snapshot failed: the log length at which to try again, so a full disk is not retried per write. */
  let snapshotRetryAt = 0
  let lock: FolderLock | undefined
  /** The folder holds format 1 files, being rewritten as format 2. */
  let migrating = false
  let log: LogFile | undefined

  const snapshotNow = (): Snapshot => ({ format: FORMAT, epoch, seq, stores: Object.fromEntries(table.states), clients: ledger.entries() })

  const start = () => {
    fs.mkdirSync(dir, { recursive: true })
    // The SQLite storage's data in the folder would otherwise be taken for no data at all: a new, empty history.
    if (existsSync(join(dir, 'zuno.db'))) throw new Error(`${dir} holds the SQLite storage's data (zuno.db): the file storage needs a folder of its own (Zuno does not migrate between them)`)
    lock = lockFolder(fs, dir)
    let fd: number | undefined
    try {
      const found = readSnapshot(fs, dir)
      migrating = found?.migrating ?? false
      if (migrating) keepFormat1Files()
      if (found !== undefined) {
        const { snapshot } = found
        epoch = snapshot.epoch
        seq = snapshot.seq
        snapshotBytes = found.bytes
        for (const [key, state] of Object.entries(snapshot.stores)) table.states.set(key, state)
        ledger.restore(snapshot.clients)
      } else {
        epoch = randomId()
        snapshotBytes = writeSnapshot(fs, dir, snapshotNow())
      }
      fd = fs.openSync(logPath, 'a+')
      const kept = new RecentEvents(options.recent ?? 1000, options.recentBytes ?? 16 * 1024 * 1024)
      const good = readLog(fs, fd, logPath, (bytes) => {
        let line: LogLine
        try {
          line = JSON.parse(bytes.toString('utf8')) as LogLine
        } catch {
          return false
        }
        linesSinceSnapshot += 1
        if ('refusal' in line) {
          // Skipped if the snapshot has it already (a crash between a snapshot and emptying the log).
          if (ledger.decide(line.refusal) === undefined) table.recordRefusal(line.refusal, line.at)
          return true
        }
        if ('unchanged' in line) {
          if (ledger.decide(line.unchanged) === undefined) table.recordUnchanged(line.unchanged, line.seq, line.at)
          return true
        }
        if (line.seq <= seq) return true // in the snapshot already
        if (line.seq !== seq + 1) throw new Error(`${logPath} skips from seq ${seq} to ${line.seq}: the folder ${dir} is damaged`)
        seq = line.seq
        if (migrating) {
          // A format 1 line: the state counts; its client id means nothing to protocol v2.
          const { storeKey, version, state } = line as unknown as { storeKey: string; version: number; state: unknown }
          table.states.set(storeKey, { version, state })
          return true
        }
        const { principal, clientId, digest, at, ...event } = line
        const committed = { ...event, id: formatEventId(epoch, line.seq) }
        table.record(committed, { principal, clientId, digest, opId: line.opId }, at)
        kept.push(committed, bytes.length + 1)
        return true
      })
      recent = kept.take()
      if (good < fs.fstatSync(fd).size) {
        // A torn last write: never acknowledged. Cut it, durably, before anything is appended.
        fs.ftruncateSync(fd, good)
        fs.fsyncSync(fd)
      }
      log = new LogFile(fs, fd, good, options.fsync ?? 'always', {
        fsyncIntervalMs: options.fsyncIntervalMs ?? 100,
        retryEveryMs: options.recoverEveryMs ?? 1000,
      })
    } catch (error) {
      if (fd !== undefined) fs.closeSync(fd)
      lock.release()
      lock = undefined
      throw error
    }
    if (migrating) {
      // Rewritten as format 2 at once: a snapshot of everything, and an empty log.
      snapshotBytes = writeSnapshot(fs, dir, snapshotNow())
      log.reset()
      linesSinceSnapshot = 0
      console.warn(`[zuno] migrated ${dir} from format 1 to ${FORMAT}; the old files are kept as *.v1`)
    }
    compactIfDue() // a log grown large under an older version is compacted now, not at the next write
  }

  /** Keeps format 1's files beside the folder's new ones, as `*.v1`, before they are rewritten. */
  const keepFormat1Files = () => {
    for (const name of ['snapshot.json', 'log.jsonl']) {
      const path = join(dir, name)
      try {
        writeFileWhole(fs, `${path}.v1`, fs.readFileSync(path))
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw error
      }
    }
  }

  const compactIfDue = () => {
    if (log === undefined || !log.health().ok) return
    const bySize = log.length > logRatio * snapshotBytes + logFloorBytes && log.length >= snapshotRetryAt
    if (linesSinceSnapshot < snapshotEvery && !bySize) return
    try {
      snapshotBytes = writeSnapshot(fs, dir, snapshotNow())
    } catch (error) {
      // The log still has every write, so nothing is lost; try again once it has grown some more.
      console.error(`[zuno] writing the snapshot in ${dir} failed; the log keeps growing until it succeeds`, error)
      snapshotRetryAt = log.length + logFloorBytes
      linesSinceSnapshot = 0
      return
    }
    snapshotRetryAt = 0
    linesSinceSnapshot = 0
    // The snapshot holds every line now. If this cut is lost (a crash), recovery skips those lines.
    log.reset()
  }

  const opened = (): LogFile => {
    if (log === undefined) throw new ZunoError('unavailable', `The file storage in ${dir} is not open`, { retryAfter: 1 })
    return log
  }

  /** Writes one line before anything changes in memory or is acknowledged; throws `unavailable` if it did not land. */
  const append = (line: LogLine) => {
    opened().append(Buffer.from(`${JSON.stringify(line)}\n`))
    linesSinceSnapshot += 1
  }

  /** Logs an accepted event, durably, then applies it: nothing is acknowledged that the log does not hold. */
  const commitEvent = (event: CommittedEvent, op: OpIdentity): CommitOutcome => {
    const { id: _, ...logged } = event
    const { principal, clientId, digest } = op
    append({ ...logged, principal, clientId, digest, at: now() })
    seq = event.seq
    table.commit(event, op)
    compactIfDue()
    return { type: 'accepted', event }
  }

  return {
    async load(): Promise<StorageImage> {
      if (log === undefined) start()
      const image = { epoch, seq, stores: copyStates(table.states), recent }
      recent = [] // handed over once: the universe keeps its own resume log from here
      return image
    },

    async commit(request: CommitRequest): Promise<CommitOutcome> {
      opened().refuseIfFailed()
      const refused = table.refuse(request, epoch)
      if (refused !== undefined) return refused
      return commitEvent(table.accept(request, epoch, seq + 1, writerTag(request.clientId)), request)
    },

    async commitAction(request: ActionCommitRequest): Promise<CommitOutcome> {
      opened().refuseIfFailed()
      const refused = table.refuseAction(request, epoch)
      if (refused !== undefined) return refused
      if (request.writes.length > 0) return commitEvent(table.acceptAction(request, epoch, seq + 1, writerTag(request.clientId)), request)
      const { principal, clientId, opId, digest } = request
      const at = now()
      append({ unchanged: { principal, clientId, opId, digest }, seq, at })
      const outcome = table.recordUnchanged(request, seq, at)
      compactIfDue()
      return outcome
    },

    async refuse(request: RefusalRequest): Promise<CommitOutcome> {
      opened().refuseIfFailed()
      const decided = table.decide(request, epoch)
      if (decided !== undefined) return decided
      const at = now()
      append({ refusal: request, at })
      const outcome = table.recordRefusal(request, at)
      compactIfDue()
      return outcome
    },

    onCommit: (listener) => table.onCommit(listener),

    // One process holds the folder: its universes are the only instances.
    bus: createLocalBus(),

    health: () => log?.health() ?? { ok: true },

    recover: () => log?.recover() ?? true,

    async close() {
      table.close()
      try {
        log?.close()
      } finally {
        log = undefined
        lock?.release()
        lock = undefined
      }
    },
  }
}
