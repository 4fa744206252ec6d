import { Redis } from 'ioredis'
import { formatEventId, type Patch, type StoreState, ZunoError } from 'zuno'
import {
  type ActionCommitRequest,
  CLIENT_DEFAULTS,
  type ClientRecordOptions,
  type CommitOutcome,
  type CommitRequest,
  type CommittedChange,
  type CommittedEvent,
  clientKey,
  notifyEach,
  type OpAnswer,
  type RefusalAnswer,
  type RefusalRequest,
  type Storage,
  type StorageCount,
  type StorageHealth,
  type StorageImage,
  type StorageRead,
  type Write,
  writerTag,
} from 'zuno/server'
import { createRedisBus } from './redisBus'
import { ACTION, COMMIT, COUNT, FORMAT, LOAD, READ, RECONCILE, REFUSE, SCAN } from './scripts'

/** Options of {@link createRedisStorage}. */
export interface RedisStorageOptions extends ClientRecordOptions {
  /** Keys are prefixed `{namespace}:`; one namespace per app (the braces keep a cluster slot). */
  namespace: string
  /** Default `redis://127.0.0.1:6379`. */
  url?: string | undefined
  /** How many events the Stream keeps (approximately) for resuming clients. Default 10,000. */
  retention?: number
  /** How many recent events a starting instance loads, to serve resumes at once. Default 1,000. */
  recent?: number
  /** How many bytes of recent events (their fields) a starting instance loads at most. Default 64 MiB. */
  recentBytes?: number
}

/** How long the follow loop blocks on the Stream before it checks the epoch again. */
const BLOCK_MS = 1000
/** A follow loop silent this much longer than a block means Redis is not answering. */
const STALL_MS = 3000
/** Backoff of the follow loop after an error: doubled from the first, up to the last. */
const BACKOFF_MS = [100, 5000] as const
/** Longest wait of a `processed` answer for this instance to catch up with the Stream. */
const CAUGHT_UP_MS = 5000
/** A reset not followed by a `load()` within this long is announced again. */
const RELOAD_WAIT_MS = 5000
/** How many stores one page of a read of every store takes (one script each, see SCAN). */
const SCAN_PAGE = 1000
/** How many times a read of every store is paged again when the Stream no longer reaches back to its first page. */
const SCAN_ATTEMPTS = 3

type Reply = Array<string | null | Reply>
type Entry = [id: string, fields: string[]]
type Script = (...args: Array<string | number>) => Promise<Reply>

/** The `p` of an action's Stream entry (see scripts.ts); '' for none. */
function entryPatches(writes: readonly Write[]): string {
  const patches = writes.map((write) => write.patch ?? null)
  if (!patches.some(Boolean)) return ''
  return JSON.stringify(writes.length === 1 ? patches[0] : patches)
}

/** An epoch id: letters and digits, as event ids carry it. */
function newEpochId(): string {
  const random = crypto.getRandomValues(new Uint32Array(2))
  return `${Date.now().toString(36)}${random[0]?.toString(36)}${random[1]?.toString(36)}`
}

const seqOf = (id: string) => Number(id.slice(id.indexOf('-') + 1))

/** A write's state as the scripts keep it: its JSON, or `''` for a deletion (no state's JSON is empty). */
const stateField = (write: Write): string => (write.deleted ? '' : JSON.stringify(write.state))

/** A kept state field read back: the state, or a deleted store's tombstone. */
function readState(json: string): { state: unknown; deleted?: true } {
  return json === '' ? { state: undefined, deleted: true } : { state: JSON.parse(json) }
}

/** Stores as the scripts reply them (key, version, state JSON, deletedAt or ''), into `into`. */
function decodeStores(flat: readonly string[], into: (key: string, stored: StoreState) => void): void {
  for (let i = 0; i < flat.length; i += 4) {
    const stored = { version: Number(flat[i + 1]), ...readState(flat[i + 2] as string) } as StoreState
    if (flat[i + 3]) stored.deletedAt = Number(flat[i + 3])
    into(flat[i] as string, stored)
  }
}

/** A store after `change`, as the scripts would read it back: a deletion keeps its version as deletedAt. */
function applied(before: StoreState | undefined, change: CommittedChange): StoreState {
  if (change.deleted) return { version: change.version, state: undefined, deleted: true, deletedAt: change.version }
  const deletedAt = before?.deletedAt
  return deletedAt === undefined ? { version: change.version, state: change.state } : { version: change.version, state: change.state, deletedAt }
}

/** The `e` digit of a Stream entry or a script's reply: `undefined` for an entry of a release before it. */
const existedOf = (digit: string | undefined): { existed?: boolean } => (digit === undefined || digit === '' ? {} : { existed: digit === '1' })

/**
 * Storage on Redis, for many server instances sharing one world. Each step (commit, action
 * commit, refusal, load, read, epoch check) is one Lua script, all or nothing; a commit is
 * acknowledged only once its event is in the Stream. Read lazily: `load()` gives the store count
 * and no store, `read` the stores asked for. Every instance fans out from the Stream, in log order,
 * and moves to a new epoch when Redis lost acknowledged history.
 */
export function createRedisStorage(options: RedisStorageOptions): Storage {
  const url = options.url ?? 'redis://127.0.0.1:6379'
  const ns = `{${options.namespace}}`
  const keys = {
    epoch: `${ns}:epoch`,
    seq: `${ns}:seq`,
    log: `${ns}:log`,
    stores: `${ns}:stores`,
    count: `${ns}:count`,
    storePrefix: `${ns}:s:`,
    client: (op: { principal: string; clientId: string }) => `${ns}:c:${clientKey(op)}`,
  }
  const retention = options.retention ?? 10_000
  const recent = options.recent ?? 1000
  const recentBytes = options.recentBytes ?? 64 * 1024 * 1024
  const window = options.idempotencyWindow ?? CLIENT_DEFAULTS.idempotencyWindow
  const lifetimeMs = options.clientLifetimeMs ?? CLIENT_DEFAULTS.clientLifetimeMs
  const now = options.now ?? Date.now
  if (!Number.isSafeInteger(window) || window < 1) throw new RangeError('idempotencyWindow must be a positive integer')
  if (!Number.isSafeInteger(lifetimeMs) || lifetimeMs < 1) throw new RangeError('clientLifetimeMs must be a positive integer')

  const commands = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 })
  // The follow loop blocks on XREAD, so it has a connection of its own.
  const reader = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  /** The last error of each connection, until it is ready again. */
  const connectionErrors = new Map<Redis, string>()
  for (const connection of [commands, reader]) {
    connection.on('error', (error: Error) => connectionErrors.set(connection, error.message))
    connection.on('ready', () => connectionErrors.delete(connection))
  }
  // Sent once, then run by SHA (ioredis falls back to EVAL on NOSCRIPT, after a Redis restart).
  // Without `numberOfKeys`, the call's first argument says how many keys follow.
  const script = (name: string, numberOfKeys: number | undefined, lua: string): Script => {
    commands.defineCommand(name, numberOfKeys === undefined ? { lua } : { numberOfKeys, lua })
    return (commands as unknown as Record<string, Script>)[name]?.bind(commands) as Script
  }
  const commitScript = script('zunoCommit', 7, COMMIT)
  const actionScript = script('zunoAction', undefined, ACTION)
  const refuseScript = script('zunoRefuse', 4, REFUSE)
  const reconcileScript = script('zunoReconcile', 3, RECONCILE)
  const loadScript = script('zunoLoad', 5, LOAD)
  const readScript = script('zunoRead', 3, READ)
  const scanScript = script('zunoScan', 3, SCAN)
  const countScript = script('zunoCount', 4, COUNT)

  const bus = createRedisBus(url, `${ns}:bus`, commands)
  const commitListeners = new Set<(event: CommittedEvent) => void>()
  const resetListeners = new Set<() => void>()
  /** What this instance knows of the history: its epoch, the last event it delivered, the last it knows of. */
  let epoch = ''
  let delivered = 0
  let known = 0
  /** Bumped whenever the epoch (or the delivery position) is replaced: what was read before is dropped. */
  let generation = 0
  /** A reset was announced; delivery waits for the universe's next `load()`. */
  let awaitingLoad = false
  let loaded: () => void = () => {}
  let following = false
  let lastHeard = 0
  let loopError: string | undefined
  let closed = false
  let connecting: Promise<unknown> | undefined
  let reconciling: Promise<void> = Promise.resolve()

  /** Where the last `load()` left the history, for `recent()` to read the events up to it (once). */
  let history: { epoch: string; base: number; seq: number } | undefined
  const connect = () => (connecting ??= Promise.all([commands.connect(), reader.connect()]))

  const unavailable = (error: unknown) =>
    error instanceof ZunoError
      ? error
      : new ZunoError('unavailable', `Redis did not answer: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryAfter: 1 })

  /** The event a Stream entry holds: one store's (`k`, `v`, `s`), or several (`n`, then `k1`, `v1`, `s1`, …), `e` and `p` (see scripts.ts). */
  const toEvent = (eventEpoch: string, [id, fields]: Entry): CommittedEvent => {
    const f: Record<string, string> = {}
    for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string
    const seq = seqOf(id)
    const common = { writer: f.w as string, opId: Number(f.o), seq, id: formatEventId(eventEpoch, seq) }
    const patchJson = f.p
    if (f.k !== undefined) {
      const stateJson = f.s as string
      // Measured by its fields, so the log need not encode a frame to count it (the recent events at start).
      const event: CommittedEvent = { storeKey: f.k, version: Number(f.v), ...readState(stateJson), ...existedOf(f.e), stateBytes: stateJson.length, ...common }
      // It holds both: a frame of the patch would not measure the state.
      return patchJson === undefined ? event : { ...event, patch: JSON.parse(patchJson), stateBytes: stateJson.length + patchJson.length }
    }
    const count = Number(f.n)
    if (!(count >= 2)) throw new Error(`zuno-redis: the Stream entry ${id} names no store; it was written by a newer version`)
    const patches = patchJson === undefined ? [] : (JSON.parse(patchJson) as Array<Patch | null>)
    const changes: CommittedChange[] = []
    let bytes = patchJson?.length ?? 0
    for (let i = 1; i <= count; i++) {
      const stateJson = f[`s${i}`] as string
      const change: CommittedChange = { storeKey: f[`k${i}`] as string, version: Number(f[`v${i}`]), ...readState(stateJson), stateBytes: stateJson.length, ...existedOf(f.e?.[i - 1]) }
      const patch = patches[i - 1]
      changes.push(patch == null ? change : { ...change, patch })
      bytes += stateJson.length
    }
    const [first] = changes as [CommittedChange]
    return { storeKey: first.storeKey, version: first.version, state: first.state, stateBytes: bytes, changes, ...common }
  }

  /** Processes waiting for the follow loop to deliver a seq (or for the history to be replaced). */
  let caughtUpWaiters: Array<{ seq: number; at: number; resolve: () => void }> = []
  const wakeCaughtUp = () => {
    if (caughtUpWaiters.length === 0) return
    const waiting = caughtUpWaiters.filter((waiter) => waiter.seq > delivered && waiter.at === generation && !closed)
    for (const waiter of caughtUpWaiters) if (!waiting.includes(waiter)) waiter.resolve()
    caughtUpWaiters = waiting
  }
  /**
   * Resolves once this instance has delivered `seq` of `requestEpoch` (so the universe's stores are
   * at least that current), at once when the epoch is not this instance's, and after `CAUGHT_UP_MS` at most.
   */
  const caughtUp = (seq: number, requestEpoch: string): Promise<void> | undefined => {
    if (seq <= delivered || requestEpoch !== epoch || !following) return undefined
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, CAUGHT_UP_MS)
      caughtUpWaiters.push({ seq, at: generation, resolve: () => (clearTimeout(timer), resolve()) })
    })
  }

  /** Takes `nextEpoch` (from `seq`) as this instance's history, and tells the universe to reload. */
  const replaceHistory = (nextEpoch: string, seq: number, why: string) => {
    console.warn(`[zuno-redis] ${why}: now epoch ${nextEpoch} from seq ${seq}; reloading`)
    epoch = nextEpoch
    delivered = seq
    known = seq
    generation += 1
    wakeCaughtUp()
    if (resetListeners.size === 0) return
    awaitingLoad = true
    notifyEach(resetListeners, undefined, 'a reset listener')
  }

  /**
   * Checks the epoch against Redis (`seen`: the highest seq this instance saw in its epoch) and
   * moves to a new one if history was lost, one check at a time.
   */
  const reconcile = (seen: number, strict = false): Promise<void> => {
    const run = reconciling.then(async () => {
      const floor = Math.max(known, seen)
      const [id, , seq] = (await reconcileScript(keys.epoch, keys.seq, keys.log, newEpochId(), epoch, floor, strict ? 1 : 0)) as string[]
      if (Number(seq) < 0) throw new Error(`Redis namespace ${options.namespace} holds Zuno data of a newer format than ${FORMAT}`)
      if (id !== epoch) replaceHistory(id as string, Number(seq), `Redis history changed under epoch ${epoch}`)
    })
    reconciling = run.catch(() => {})
    return run
  }

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  /** Waits for `load()` after a reset, announcing it again if none comes. */
  const waitForLoad = async () => {
    const reload = new Promise<void>((resolve) => (loaded = resolve))
    const timer = setTimeout(() => loaded(), RELOAD_WAIT_MS)
    await reload
    clearTimeout(timer)
    if (awaitingLoad && !closed) notifyEach(resetListeners, undefined, 'a reset listener')
  }

  /** Follows the Stream and hands each event to the listeners, in order; survives every error. */
  const follow = async () => {
    if (following) return
    following = true
    lastHeard = Date.now()
    let backoff: number = BACKOFF_MS[0]
    while (!closed) {
      if (awaitingLoad) {
        await waitForLoad()
        continue
      }
      const at = generation
      const from = delivered
      try {
        const reply = (await reader.xread('COUNT', 1000, 'BLOCK', BLOCK_MS, 'STREAMS', keys.log, `0-${from}`)) as Array<[string, Entry[]]> | null
        const entries = reply?.[0]?.[1] ?? []
        const last = entries.at(-1)
        // The entries count only if the history they came from is still this epoch's.
        await reconcile(last === undefined ? 0 : seqOf(last[0]))
        lastHeard = Date.now()
        loopError = undefined
        backoff = BACKOFF_MS[0]
        if (at !== generation || closed) continue
        let expected = from + 1
        for (const entry of entries) {
          if (seqOf(entry[0]) !== expected && resetListeners.size > 0) {
            // Events this instance never delivered are gone from the Stream: start over from a snapshot.
            replaceHistory(epoch, from, `the Stream lost events after ${from} before this instance read them`)
            break
          }
          expected = seqOf(entry[0]) + 1
          const event = toEvent(epoch, entry)
          delivered = event.seq
          if (event.seq > known) known = event.seq
          notifyEach(commitListeners, event, 'a commit listener')
          if (at !== generation) break
        }
        wakeCaughtUp()
      } catch (error) {
        if (closed) break
        loopError = error instanceof Error ? error.message : String(error)
        console.error(`[zuno-redis] following the Stream failed; retrying in ${backoff} ms`, error)
        await sleep(backoff)
        backoff = Math.min(backoff * 2, BACKOFF_MS[1])
      }
    }
    following = false
  }

  /** After a write refused as `lost`: reconcile, then answer with the epoch it moved to. */
  const afterLoss = async (requestEpoch: string): Promise<CommitOutcome> => {
    await reconcile(0, true)
    if (epoch === requestEpoch) throw new ZunoError('unavailable', 'Redis history is being checked; try again', { retryAfter: 1 })
    return { type: 'epoch_changed', epoch }
  }

  /** The outcomes both scripts share; `undefined` for the ones only COMMIT gives. */
  const decided = async (reply: Reply, storeKey: string, requestEpoch: string): Promise<CommitOutcome | undefined> => {
    switch (reply[0]) {
      case 'processed':
        // Answered with the store's current truth: the universe must have read at least this far.
        await caughtUp(Number(reply[1]), requestEpoch)
        return { type: 'processed' }
      case 'reused':
        return { type: 'reused' }
      case 'unknown_client':
        return { type: 'unknown_client' }
      case 'epoch_changed':
        if (reply[1] !== epoch) void reconcile(0).catch(() => {})
        return { type: 'epoch_changed', epoch: reply[1] as string }
      case 'answered': {
        const kept = reply[1] as string
        if (kept.startsWith('x')) return { type: 'answered', answer: JSON.parse(kept.slice(1)) as RefusalAnswer }
        const colon = kept.indexOf(':')
        const version = Number(kept.slice(1, colon))
        const answer: OpAnswer = { type: 'accepted', storeKey, version, seq: Number(kept.slice(colon + 1)), state: readState(reply[2] as string).state }
        return { type: 'answered', answer }
      }
    }
    return undefined
  }

  /** The event of an accepted action: its one store's, or all of them in `changes` (each now one past its base). */
  const actionEvent = (request: ActionCommitRequest, writer: string, stateJsons: readonly string[], seq: number, existed: string): CommittedEvent => {
    const changes = request.writes.map(({ storeKey, baseVersion, state, stateBytes, patch, deleted }, i): CommittedChange => {
      if (deleted) return { storeKey, version: baseVersion + 1, state: undefined, deleted: true, ...existedOf(existed[i]) }
      const change: CommittedChange = { storeKey, version: baseVersion + 1, state, stateBytes: stateBytes ?? (stateJsons[i] as string).length, ...existedOf(existed[i]) }
      return patch === undefined ? change : { ...change, patch }
    })
    const [first] = changes as [CommittedChange]
    const event: CommittedEvent = { ...first, writer, opId: request.opId, seq, id: formatEventId(request.epoch, seq) }
    if (changes.length === 1) return event
    let bytes = 0
    for (const change of changes) bytes += change.stateBytes ?? 0
    return { ...event, stateBytes: bytes, changes }
  }

  /**
   * A kept acceptance of an action (`a<version>:<seq>`; version 0 when it wrote nothing). The
   * universe answers it with the changes of its event from its own log, so this instance first
   * follows the Stream that far.
   */
  const actionAnswered = async (kept: string, reply: Reply, requestEpoch: string): Promise<CommitOutcome> => {
    const colon = kept.indexOf(':')
    const version = Number(kept.slice(1, colon))
    const seq = Number(kept.slice(colon + 1))
    await caughtUp(seq, requestEpoch)
    if (version === 0) return { type: 'answered', answer: { type: 'accepted', storeKey: '', version, seq } }
    const answer: OpAnswer = { type: 'accepted', storeKey: reply[3] as string, version, seq, state: readState(reply[2] as string).state }
    return { type: 'answered', answer }
  }

  /** A read refused by its script (the epoch moved on, or history was lost): reconcile, and have it asked again. */
  const readRefused = async (reply: Reply): Promise<never> => {
    await reconcile(0).catch(() => {})
    const why = reply[0] === 'epoch_changed' ? `Redis moved to epoch ${String(reply[1])}` : 'Redis lost history'
    throw new ZunoError('unavailable', `${why} while this instance was reading stores; try again`, { retryAfter: 1 })
  }

  /** The Stream's entries after `from` up to `to` in `readEpoch`, when it still holds every one of them. */
  const entriesBetween = async (readEpoch: string, from: number, to: number): Promise<Entry[] | undefined> => {
    const entries: Entry[] = []
    let next = from + 1
    while (next <= to) {
      const chunk = (await commands.xrange(keys.log, `0-${next}`, `0-${to}`, 'COUNT', SCAN_PAGE)) as Entry[]
      for (const entry of chunk) {
        if (seqOf(entry[0]) !== next) return undefined
        entries.push(entry)
        next += 1
      }
      if (chunk.length === 0) return undefined
    }
    // Read in this epoch: the entries are its events only if it still is Redis's.
    return (await commands.hget(keys.epoch, 'id')) === readEpoch ? entries : undefined
  }

  /**
   * Every store, as of one seq: SCAN pages (each one script, so Redis is never held for long), each
   * read at its own seq, then brought on to the last page's seq by the Stream's events between the
   * first page and the last. A store SSCAN did not return was created after the first page, so its
   * whole history is among those events. When the Stream no longer reaches back that far (more than
   * `retention` events meanwhile), it pages again, then reads every store in one script.
   */
  const readEvery = async (): Promise<StorageRead> => {
    for (let attempt = 0; attempt < SCAN_ATTEMPTS; attempt++) {
      const read = new Map<string, { at: number; stored: StoreState }>()
      let first: number | undefined
      let seq = 0
      let cursor = '0'
      // Every page of one epoch: the first page's (this instance's, once loaded).
      let readEpoch = epoch
      do {
        const reply = await scanScript(keys.epoch, keys.seq, keys.stores, readEpoch, known, keys.storePrefix, cursor, SCAN_PAGE)
        if (reply[0] !== 'ok') return await readRefused(reply)
        readEpoch = reply[4] as string
        seq = Number(reply[1])
        first ??= seq
        cursor = reply[2] as string
        decodeStores(reply[3] as string[], (key, stored) => {
          if ((read.get(key)?.at ?? -1) < seq) read.set(key, { at: seq, stored })
        })
      } while (cursor !== '0')
      const entries = first === seq ? [] : await entriesBetween(readEpoch, first as number, seq)
      if (entries === undefined) continue
      for (const entry of entries) {
        const event = toEvent(readEpoch, entry)
        for (const change of event.changes ?? [event]) {
          const had = read.get(change.storeKey)
          if (had !== undefined && had.at >= event.seq) continue
          read.set(change.storeKey, { at: event.seq, stored: applied(had?.stored, change) })
        }
      }
      const stores = new Map<string, StoreState>()
      for (const [key, { stored }] of read) stores.set(key, stored)
      return { epoch: readEpoch, seq, stores }
    }
    const reply = await readScript(keys.epoch, keys.seq, keys.stores, epoch, known, keys.storePrefix, '1')
    if (reply[0] !== 'ok') return readRefused(reply)
    const stores = new Map<string, StoreState>()
    decodeStores(reply[2] as string[], (key, stored) => stores.set(key, stored))
    return { epoch: reply[3] as string, seq: Number(reply[1]), stores }
  }

  return {
    async load(): Promise<StorageImage> {
      await connect()
      // No recent event here (0): they are read after the start (`recent()`), which need not wait for them.
      const reply = await loadScript(keys.epoch, keys.seq, keys.log, keys.stores, keys.count, newEpochId(), epoch, known, 0, keys.storePrefix, recentBytes)
      const [id, baseText, seqText, format, countText] = reply as [string, string, string, string, string, Entry[], string]
      if (Number(seqText) < 0) {
        throw new Error(`Redis namespace ${options.namespace} holds Zuno data of format ${format}; this version reads format ${FORMAT} only`)
      }
      const seq = Number(seqText)
      history = { epoch: id, base: Number(baseText), seq }
      if (id !== epoch && epoch !== '') console.warn(`[zuno-redis] loaded epoch ${id} (was ${epoch})`)
      epoch = id
      delivered = seq
      known = seq
      generation += 1
      awaitingLoad = false
      loaded()
      wakeCaughtUp()
      // No store: each is read when the universe first needs it (`read`).
      return { epoch: id, seq, stores: new Map(), storeCount: Number(countText) }
    },

    async recent(): Promise<CommittedEvent[]> {
      const loaded = history
      history = undefined
      if (loaded === undefined) return []
      // The newest entries up to the loaded seq, at most `recent` of them and `recentBytes` of fields.
      const entries: Entry[] = []
      let bytes = 0
      let from = `0-${loaded.seq}`
      reading: while (entries.length < recent && loaded.seq > loaded.base) {
        const chunk = (await commands.xrevrange(keys.log, from, `(0-${loaded.base}`, 'COUNT', Math.min(100, recent - entries.length))) as Entry[]
        if (chunk.length === 0) break
        for (const entry of chunk) {
          for (let i = 1; i < entry[1].length; i += 2) bytes += (entry[1][i] as string).length
          if (bytes > recentBytes) break reading
          entries.push(entry)
        }
        from = `(${(chunk[chunk.length - 1] as Entry)[0]}`
      }
      // Oldest first, as far back as they follow each other up to the loaded seq.
      const events: CommittedEvent[] = []
      for (const entry of entries) {
        if (seqOf(entry[0]) !== loaded.seq - events.length) break
        events.push(toEvent(loaded.epoch, entry))
      }
      return events.reverse()
    },

    async count(): Promise<StorageCount> {
      await connect()
      const reply = await countScript(keys.epoch, keys.seq, keys.stores, keys.count, epoch, known, keys.storePrefix)
      if (reply[0] !== 'ok') return await readRefused(reply)
      return { epoch: reply[3] as string, seq: Number(reply[1]), storeCount: Number(reply[2]) }
    },

    async read(storeKeys: readonly string[] | undefined): Promise<StorageRead> {
      await connect()
      try {
        if (storeKeys === undefined) return await readEvery()
        const reply = await readScript(keys.epoch, keys.seq, keys.stores, epoch, known, keys.storePrefix, '0', ...storeKeys)
        if (reply[0] !== 'ok') return await readRefused(reply)
        const stores = new Map<string, StoreState>()
        decodeStores(reply[2] as string[], (key, stored) => stores.set(key, stored))
        return { epoch: reply[3] as string, seq: Number(reply[1]), stores }
      } catch (error) {
        throw unavailable(error)
      }
    },

    async commit(request: CommitRequest): Promise<CommitOutcome> {
      const { storeKey, baseVersion, state, patch, deleted } = request.write
      const writer = writerTag(request.clientId)
      let reply: Reply
      try {
        reply = await commitScript(
          keys.epoch,
          keys.seq,
          keys.log,
          `${keys.storePrefix}${storeKey}`,
          keys.stores,
          keys.client(request),
          keys.count,
          request.epoch,
          request.epoch === epoch ? known : 0,
          storeKey,
          baseVersion,
          stateField(request.write),
          writer,
          request.opId,
          request.digest,
          window,
          lifetimeMs,
          now(),
          retention,
          patch === undefined ? '' : JSON.stringify(patch),
        )
      } catch (error) {
        throw unavailable(error)
      }
      switch (reply[0]) {
        case 'accepted': {
          const seq = Number(reply[2])
          if (request.epoch === epoch) known = Math.max(known, seq)
          else void reconcile(0).catch(() => {})
          const event: CommittedEvent = {
            storeKey,
            version: Number(reply[1]),
            state: deleted ? undefined : state,
            writer,
            opId: request.opId,
            seq,
            id: formatEventId(request.epoch, seq),
            ...existedOf(reply[3] as string | undefined),
          }
          if (deleted) event.deleted = true
          return { type: 'accepted', event: patch === undefined ? event : { ...event, patch } }
        }
        case 'conflict': {
          const conflict: Extract<CommitOutcome, { type: 'conflict' }> = { type: 'conflict', version: Number(reply[1]), ...(reply[2] == null ? { state: undefined } : readState(reply[2] as string)) }
          // Created again since a deletion after the op's base: the op was made on the store that was deleted.
          const deletedAt = Number(reply[3] ?? 0)
          if (!conflict.deleted && deletedAt > baseVersion) conflict.deletedAt = deletedAt
          return conflict
        }
        case 'lost':
          return afterLoss(request.epoch)
      }
      const outcome = await decided(reply, storeKey, request.epoch)
      if (outcome === undefined) throw new Error(`zuno-redis: unexpected reply ${String(reply[0])}`)
      return outcome
    },

    async commitAction(request: ActionCommitRequest): Promise<CommitOutcome> {
      const { writes, reads } = request
      const storeKeys = [...writes.map((write) => write.storeKey), ...reads.map((read) => read.storeKey)]
      // The script checks every store before it writes one: a store named twice would be written on a version it no longer has.
      if (new Set(storeKeys).size !== storeKeys.length) throw new Error('zuno-redis: an action commit names a store twice')
      const writer = writerTag(request.clientId)
      const stateJsons = writes.map(stateField)
      const args: Array<string | number> = [6 + storeKeys.length, keys.epoch, keys.seq, keys.log, keys.stores, keys.client(request), keys.count]
      for (const storeKey of storeKeys) args.push(`${keys.storePrefix}${storeKey}`)
      const floor = request.epoch === epoch ? known : 0
      args.push(request.epoch, floor, writer, request.opId, request.digest, window, lifetimeMs, now(), retention, writes.length, request.resentAfterMs ?? -1)
      args.push(entryPatches(writes))
      writes.forEach((write, i) => args.push(write.storeKey, write.baseVersion, stateJsons[i] as string))
      for (const read of reads) args.push(read.storeKey, read.version)
      let reply: Reply
      try {
        reply = await actionScript(...args)
      } catch (error) {
        throw unavailable(error)
      }
      switch (reply[0]) {
        case 'accepted': {
          const seq = Number(reply[1])
          if (request.epoch === epoch) known = Math.max(known, seq)
          else void reconcile(0).catch(() => {})
          return { type: 'accepted', event: actionEvent(request, writer, stateJsons, seq, reply[2] as string) }
        }
        case 'unchanged': {
          // Its cursor is this seq: the universe's answer must not be ahead of what it has applied.
          const seq = Number(reply[1])
          await caughtUp(seq, request.epoch)
          return { type: 'unchanged', seq }
        }
        case 'conflict':
          // The store that moved, as Redis has it now: the universe runs the action again on it without waiting for its follow.
          return {
            type: 'conflict',
            version: Number(reply[1]),
            ...(typeof reply[2] === 'string' ? readState(reply[2]) : { state: undefined }),
            storeKey: reply[3] as string,
          }
        case 'lost':
          return afterLoss(request.epoch)
        case 'answered':
          if ((reply[1] as string).startsWith('a')) return actionAnswered(reply[1] as string, reply, request.epoch)
      }
      const outcome = await decided(reply, '', request.epoch)
      if (outcome === undefined) throw new Error(`zuno-redis: unexpected reply ${String(reply[0])}`)
      return outcome
    },

    async refuse(request: RefusalRequest): Promise<CommitOutcome> {
      const { storeKey, error, message, issues } = request
      const answer: RefusalAnswer = { type: 'refused', storeKey, error, message, ...(issues === undefined ? {} : { issues }) }
      let reply: Reply
      try {
        reply = await refuseScript(
          keys.epoch,
          keys.seq,
          keys.log,
          keys.client(request),
          request.epoch,
          request.opId,
          request.digest,
          storeKey,
          writerTag(request.clientId),
          JSON.stringify(answer),
          window,
          lifetimeMs,
          now(),
          request.resentAfterMs ?? -1,
        )
      } catch (error) {
        throw unavailable(error)
      }
      if (reply[0] === 'lost') return afterLoss(request.epoch)
      const outcome = await decided(reply, storeKey, request.epoch)
      if (outcome === undefined) throw new Error(`zuno-redis: unexpected reply ${String(reply[0])}`)
      return outcome
    },

    onCommit(listener) {
      commitListeners.add(listener)
      void follow()
      return () => {
        commitListeners.delete(listener)
      }
    },

    // Control requests and revocations between the instances of the namespace.
    bus,

    onReset(listener) {
      resetListeners.add(listener)
      return () => {
        resetListeners.delete(listener)
      }
    },

    health(): StorageHealth {
      if (closed) return { ok: false, reason: 'the storage is closed' }
      const [connectionError] = connectionErrors.values()
      if (connectionError !== undefined) return { ok: false, reason: `Redis is unreachable (${connectionError})` }
      if (awaitingLoad) return { ok: false, reason: 'Redis history moved to a new epoch; reloading' }
      if (following) {
        if (loopError !== undefined) return { ok: false, reason: `the Stream cannot be read (${loopError})` }
        const silent = Date.now() - lastHeard
        if (silent > BLOCK_MS + STALL_MS) return { ok: false, reason: `Redis has not answered for ${silent} ms` }
      }
      return { ok: true }
    },

    async close() {
      closed = true
      commitListeners.clear()
      resetListeners.clear()
      loaded()
      wakeCaughtUp()
      bus.close()
      reader.disconnect()
      if (connecting === undefined) commands.disconnect()
      else await commands.quit().catch(() => {})
    },
  }
}
