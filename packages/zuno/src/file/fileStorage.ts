import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, truncateSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { randomId } from '../id'
import { formatEventId, type StoreState } from '../protocol'
import type { CommitOutcome, CommittedEvent, Proposal, Storage, StorageImage } from '../server/storage'
import { StoreTable } from '../server/storeTable'

/** When the log is flushed to disk. */
export type FsyncPolicy =
  /** Before every acknowledgement: an acknowledged write survives a power cut. The default. */
  | 'always'
  /** At most every `fsyncIntervalMs`: a crash of the process loses nothing, a power cut the last moments. */
  | 'interval'
  /** Left to the operating system. */
  | 'never'

/** Options of {@link createFileStorage}. */
export interface FileStorageOptions {
  /** The folder for `snapshot.json` and `log.jsonl`; created if missing. */
  dir: string
  fsync?: FsyncPolicy
  /** With `fsync: 'interval'`. Default 100. */
  fsyncIntervalMs?: number
  /** Write a snapshot and start a fresh log after this many events. Default 10,000. */
  snapshotEvery?: number
  /** How many recent `(clientId, opId)` answers are kept for idempotent retries. Default 10,000. */
  idempotencyWindow?: number
  /** How many recent events a restarted server can still replay to resuming clients. Default 1,000. */
  recent?: number
}

/** One line of the log: a committed event. */
type LogLine = Omit<CommittedEvent, 'id'>

interface Snapshot {
  epoch: string
  seq: number
  stores: Record<string, StoreState>
  /** Recent idempotency answers, so a retry across a restart is still recognised. */
  answers: Array<[string, StoreState]>
}

/**
 * A durable, embedded storage: an append-only log of JSON lines plus a periodic snapshot, in one
 * folder, with no dependencies; it runs on Node.js and on Bun. Recovery reads the snapshot and
 * replays the log after it, and tolerates a torn last line (a crash mid-write): that write was
 * never acknowledged. The epoch is kept, so event ids stay valid across restarts.
 */
export function createFileStorage(options: FileStorageOptions): Storage {
  const { dir } = options
  const fsyncPolicy = options.fsync ?? 'always'
  const snapshotEvery = options.snapshotEvery ?? 10_000
  const window = options.idempotencyWindow ?? 10_000
  const recentLimit = options.recent ?? 1000
  const snapshotPath = join(dir, 'snapshot.json')
  const logPath = join(dir, 'log.jsonl')

  const table = new StoreTable(window)
  let recent: CommittedEvent[] = []
  let epoch = ''
  let seq = 0
  let sinceSnapshot = 0
  let log = -1
  let flushTimer: ReturnType<typeof setInterval> | undefined
  let dirty = false

  const recover = () => {
    mkdirSync(dir, { recursive: true })
    if (existsSync(snapshotPath)) {
      const snapshot = JSON.parse(readFileSync(snapshotPath, 'utf8')) as Snapshot
      epoch = snapshot.epoch
      seq = snapshot.seq
      for (const [key, state] of Object.entries(snapshot.stores)) table.states.set(key, state)
      for (const [key, answer] of snapshot.answers ?? []) table.answers.set(key, answer)
    } else {
      epoch = randomId()
      writeSnapshot()
    }
    if (existsSync(logPath)) {
      const bytes = readFileSync(logPath)
      let start = 0
      let end = bytes.indexOf(10) // '\n'
      // Only complete lines count: a last line without its newline is a write the crash cut short.
      while (end !== -1) {
        let line: LogLine
        try {
          line = JSON.parse(bytes.subarray(start, end).toString('utf8')) as LogLine
        } catch {
          break // a torn line can only be the last one written; stop there
        }
        start = end + 1
        end = bytes.indexOf(10, start)
        if (line.seq <= seq) continue // already in the snapshot
        seq = line.seq
        table.record(line)
        recent.push({ ...line, id: formatEventId(epoch, line.seq) })
        if (recent.length > recentLimit * 2) recent = recent.slice(-recentLimit)
        sinceSnapshot += 1
      }
      if (start < bytes.length) truncateSync(logPath, start)
      recent = recent.slice(-recentLimit)
    }
    log = openSync(logPath, 'a')
    if (fsyncPolicy === 'interval') {
      flushTimer = setInterval(flush, options.fsyncIntervalMs ?? 100)
      ;(flushTimer as { unref?: () => void }).unref?.()
    }
  }

  const flush = () => {
    if (dirty && log !== -1) {
      fsyncSync(log)
      dirty = false
    }
  }

  function writeSnapshot(): void {
    const snapshot: Snapshot = { epoch, seq, stores: Object.fromEntries(table.states), answers: [...table.answers] }
    const temporary = `${snapshotPath}.tmp`
    const fd = openSync(temporary, 'w')
    writeSync(fd, JSON.stringify(snapshot))
    fsyncSync(fd)
    closeSync(fd)
    renameSync(temporary, snapshotPath) // atomic: the old snapshot or the new one, never half of one
  }

  const compact = () => {
    writeSnapshot()
    // Everything in the log is in the snapshot now; a crash before this truncation only means
    // replaying lines the snapshot already has, which recovery skips.
    closeSync(log)
    log = openSync(logPath, 'w')
    sinceSnapshot = 0
  }

  return {
    async load(): Promise<StorageImage> {
      if (log === -1) recover()
      return { epoch, seq, stores: new Map(table.states), recent: [...recent] }
    },

    async commit(proposal: Proposal): Promise<CommitOutcome> {
      const refused = table.refuse(proposal)
      if (refused !== undefined) return refused
      const event = table.accept(proposal, epoch, seq + 1)
      const { id: _, ...line } = event
      // Written (and, by default, flushed) before anything changes in memory or is acknowledged.
      writeSync(log, `${JSON.stringify(line)}\n`)
      if (fsyncPolicy === 'always') fsyncSync(log)
      else dirty = true
      seq = event.seq
      table.commit(event)
      if (++sinceSnapshot >= snapshotEvery) compact()
      return { type: 'accepted', event }
    },

    onCommit: (listener) => table.onCommit(listener),

    async close() {
      table.close()
      if (flushTimer !== undefined) clearInterval(flushTimer)
      if (log !== -1) {
        flush()
        closeSync(log)
        log = -1
      }
    },
  }
}
