import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, truncateSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { randomId } from '../id'
import { formatEventId, type StoreState, writerTag } from '../protocol'
import { CLIENT_DEFAULTS, ClientLedger, type ClientRecord } from '../server/clientLedger'
import type { ClientRecordOptions } from '../server/memoryStorage'
import type { CommitOutcome, CommitRequest, CommittedEvent, OpIdentity, RefusalRequest, Storage, StorageImage } from '../server/storage'
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
export interface FileStorageOptions extends ClientRecordOptions {
  /** The folder for `snapshot.json` and `log.jsonl`; created if missing. */
  dir: string
  fsync?: FsyncPolicy
  /** With `fsync: 'interval'`. Default 100. */
  fsyncIntervalMs?: number
  /** Write a snapshot and start a fresh log after this many events. Default 10,000. */
  snapshotEvery?: number
  /** How many recent events a restarted server can still replay to resuming clients. Default 1,000. */
  recent?: number
}

/** The format of the folder's files; an older one is refused (nothing was published with it), a newer one too. */
const FORMAT = 2

/** One line of the log: a committed event with its op's identity, or a refusal for good. */
type LogLine =
  | (Omit<CommittedEvent, 'id'> & OpIdentity & { at: number })
  | { refusal: RefusalRequest; at: number }

interface Snapshot {
  format: number
  epoch: string
  seq: number
  stores: Record<string, StoreState>
  /** Every client's record, so exactly-once holds across a restart. */
  clients: Array<[string, ClientRecord]>
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
  const recentLimit = options.recent ?? 1000
  const snapshotPath = join(dir, 'snapshot.json')
  const logPath = join(dir, 'log.jsonl')

  const ledger = new ClientLedger(
    options.idempotencyWindow ?? CLIENT_DEFAULTS.idempotencyWindow,
    options.clientLifetimeMs ?? CLIENT_DEFAULTS.clientLifetimeMs,
    options.now,
  )
  const now = options.now ?? Date.now
  const table = new StoreTable(ledger)
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
      if (snapshot.format !== FORMAT) {
        throw new Error(`${dir} holds Zuno data of format ${snapshot.format ?? 1}; this version reads format ${FORMAT} only`)
      }
      epoch = snapshot.epoch
      seq = snapshot.seq
      for (const [key, state] of Object.entries(snapshot.stores)) table.states.set(key, state)
      ledger.restore(snapshot.clients)
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
        sinceSnapshot += 1
        if ('refusal' in line) {
          table.recordRefusal(line.refusal, line.at)
          continue
        }
        if (line.seq <= seq) continue // already in the snapshot
        seq = line.seq
        const { principal, clientId, digest, at, ...event } = line
        const committed = { ...event, id: formatEventId(epoch, line.seq) }
        table.record(committed, { principal, clientId, digest, opId: line.opId }, at)
        recent.push(committed)
        if (recent.length > recentLimit * 2) recent = recent.slice(-recentLimit)
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
    const snapshot: Snapshot = { format: FORMAT, epoch, seq, stores: Object.fromEntries(table.states), clients: ledger.entries() }
    const temporary = `${snapshotPath}.tmp`
    const fd = openSync(temporary, 'w')
    writeSync(fd, JSON.stringify(snapshot))
    fsyncSync(fd)
    closeSync(fd)
    renameSync(temporary, snapshotPath) // atomic: the old snapshot or the new one, never half of one
  }

  /** Writes one line (and, by default, flushes it) before anything changes in memory or is acknowledged. */
  const append = (line: LogLine) => {
    writeSync(log, `${JSON.stringify(line)}\n`)
    if (fsyncPolicy === 'always') fsyncSync(log)
    else dirty = true
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

    async commit(request: CommitRequest): Promise<CommitOutcome> {
      const refused = table.refuse(request, epoch)
      if (refused !== undefined) return refused
      const event = table.accept(request, epoch, seq + 1, writerTag(request.clientId))
      const { id: _, ...logged } = event
      const { principal, clientId, digest } = request
      const at = now()
      append({ ...logged, principal, clientId, digest, at })
      seq = event.seq
      table.commit(event, request)
      if (++sinceSnapshot >= snapshotEvery) compact()
      return { type: 'accepted', event }
    },

    async refuse(request: RefusalRequest): Promise<CommitOutcome> {
      const decided = table.decide(request, epoch)
      if (decided !== undefined) return decided
      const at = now()
      append({ refusal: request, at })
      const outcome = table.recordRefusal(request, at)
      if (++sinceSnapshot >= snapshotEvery) compact()
      return outcome
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
