import type { StandardSchemaV1 } from '@standard-schema/spec'
import { type ActionArgs, type ActionContext, type ActionEffect, type ActionSpec, DELETED, runAction, type ServerAction, type StoreRead } from '../action'
import { appSetup, type ZunoApp } from '../app'
import { isZunoError, ZunoError } from '../errors'
import { newClientId, randomId } from '../id'
import {
  ACTION_NAME_PATTERN,
  type ActionRequest,
  formatEventId,
  type PatchRequest,
  parseEventId,
  RECORDED_REFUSALS,
  type StateResponse,
  type StoreChange,
  type StoreState,
  type SyncRequest,
} from '../protocol'
import { applyPatch, diff, type IdPaths, jsonLongerThan, type Patch, PatchError } from '../patch'
import { idStepsDeclared, overlapsItself, patchesOverlap } from './patchRules'
import { formatEventId as eventIdOf } from '../protocol'
import { type Schemas, type StatesOf, validateState } from '../schema'
import { compilePattern, isFamily, type KeyDeclaration, type SpecOf, storeSpecs } from '../storeSpecs'
import { applyUpdater, type StoreCell, type Updater } from '../store'
import { assertStoreKey, Universe } from '../universe'
import { utf8Length } from './bytes'
import { opDigest } from './clientLedger'
import { deepFreeze, toJsonValue } from './json'
import { HotStores } from './hotStores'
import { EventLog, type LogEntry, logEntry } from './log'
import { createMemoryStorage } from './memoryStorage'
import { notifyEach } from './notify'
import type { InstanceSignal } from './signals'
import type { CommitOutcome, CommittedChange, CommittedEvent, OpAnswer, OpIdentity, RefusalAnswer, Storage, Write } from './storage'

/** Options of {@link createUniverse}. */
export interface UniverseOptions<S extends Schemas = Schemas> {
  /** Stores that exist from the start, with their initial state (at version 0). Default: none. */
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
  /** How many bytes of recent events (as SSE frames) are kept for clients that resume. Default 64 MiB. */
  retentionBytes?: number
  /**
   * Per-store Standard Schemas (zod, valibot, arktype…). Every write, a client's or the server's,
   * is validated (422 `invalid_state` with the issues); the schema's output is what is stored.
   * Default: none; any JSON is accepted.
   */
  schemas?: S
  /** Most stores that may exist (403 `store_limit` for one more). Default 10,000. */
  maxStores?: number
  /**
   * With a storage read lazily (one that has `read`: SQLite, Redis): how many stores stay in memory
   * beyond those in use, the most recently used; the others are read again when next needed.
   * Stores declared by their key and stores server code holds through `store()` always stay.
   * Default 10,000.
   */
  hotStores?: number
  /**
   * With a storage read lazily whose changes may not say whether their store existed (Redis, while
   * instances of an earlier release write beside this one): the least time between two counts of
   * the stores asked of the storage (`Storage.count`), each of which may hold Redis for a pass over
   * every store (about 0.3 s per 100,000). Until a count, `maxStores` may be passed by one per store
   * that release created again after a deletion. Default 60,000.
   */
  recountEveryMs?: number
  /**
   * Largest state of one store, in bytes of JSON (413 `state_too_large`). Default: only the body
   * limit, which bounds a whole state but not what patches build on one: set it for stores clients
   * patch (each patch's result is then measured, a pass over the state).
   */
  maxStateBytes?: number
  /**
   * Server-only implementations of actions, by name: each replaces the shared `run` of the app's
   * action of that name on the server (rules and secrets the client must not see), or defines an
   * action that exists only here. One that exists only here gets its arguments unchecked, as sent:
   * check them in the function (or define the action in the app, with an `args` schema). Default:
   * the app's own actions run as defined.
   */
  actions?: Record<string, ServerAction>
  /**
   * How long an action may run (an async server implementation, say) before it is refused
   * `action_failed`: actions run one at a time per instance, so one that never settles would hold
   * the others. Default 10,000 ms.
   */
  actionTimeoutMs?: number
  /**
   * Per store, the array paths whose items are identified by a key (see `IdPaths`): the patches the
   * server makes of its own writes and actions address those items by id. Default: none.
   */
  ids?: Record<string, IdPaths>
  /**
   * Stores that merge disjoint edits: a patch proposed on a stale base is accepted when no change
   * since its base touched a path it touches (see `docs/consistency.md#merging`). Default: none.
   */
  merge?: readonly string[]
  /**
   * How many of each store's latest patches are kept, to merge a proposal made that many versions
   * back and to answer with patches rather than the whole state. Default 64.
   */
  patchHistory?: number
}

/** The actions and store declarations (families included) of the app a universe was made from (`createUniverse({ app })`). */
interface AppActions {
  appActions?: Readonly<Record<string, ActionSpec>>
  appStores?: Readonly<Record<string, KeyDeclaration>>
}

/** The most stores one action may read and write: Redis runs a commit as one script, whose arguments are bounded. */
const MAX_STORES_PER_ACTION = 1000

/** How many times an action runs again after a store it used moved before its commit. */
const ACTION_ATTEMPTS = 64

/** How many times a lazy read is tried again when this instance's log moved on past it. */
const READ_ATTEMPTS = 3

/** How long a lazy read waits for this instance to apply what the storage had when it read, ms. */
const READ_CATCH_UP_MS = 5000

/** How long a storage may take to answer a read before it counts as failed (503), ms. */
const READ_TIMEOUT_MS = 5000

/** On a storage read lazily, the most stores a snapshot of every store reads (or `hotStores`, if more). */
const EVERY_STORE_READ_LIMIT = 10_000

/** How long a read of every store is shared with the requests that come after it, ms. */
const EVERY_READ_SHARED_MS = 1000

/** How long a read of another epoch waits for this instance to reload before reading again, ms. */
const READ_RETRY_MS = 200

/** How long after the last change whose `existed` had to be guessed the store count is asked of the storage, ms. */
const COUNT_QUIET_MS = 1000

/** Stores read from a storage read lazily, as of `seq`, once this instance's log (`log`) had reached it. */
interface StoresRead {
  log: EventLog
  seq: number
  stores: Map<string, StoreState>
}

/** Stores held in memory for a request (see {@link AuthoritativeUniverse.hold}). */
export interface HeldStores {
  /** The held stores (or those named, or those `readable` admits) as of this instance's position now. */
  snapshot(storeKeys?: readonly string[], readable?: (storeKey: string) => boolean): StateResponse
  /** Lets them go: past `hotStores`, they may be evicted again. Calling it twice is harmless. */
  release(): void
}

/** What became of an action, as the sync server answers it. */
export type ActionResult =
  | {
      /** The kind of result. */
      type: 'accepted'
      /** Every store it changed (none when it wrote nothing, or with `duplicate`). */
      changes: StoreChange[]
      /** The event id of its commit, or of the last event before it when it wrote nothing; unknown with `duplicate`. */
      cursor: string | undefined
      /** Processed before, and what it made is no longer at hand. */
      duplicate?: true
    }
  | {
      /** The kind of result. */
      type: 'refused'
      /** Why; its `status` is the HTTP answer. */
      error: ZunoError
    }

/** Who proposes an action, and which stores they may reach. */
export interface ActionCaller extends Proposer {
  /** What the action's server implementation is told of its caller. */
  context: ActionContext
  /** Whether the caller may read or write a store; an action that reaches further is refused `forbidden`. Default: everything. */
  may?: (storeKey: string, access: 'read' | 'write') => boolean
}

/** How many times a server-side `set` retries after losing a race to another writer. */
const SERVER_WRITE_ATTEMPTS = 64

/** What became of a proposal, as the sync server answers it. */
export type ProposalResult =
  /** Accepted now, or before (`duplicate`: processed earlier and its answer no longer kept; this is the current truth). */
  | {
      /** The kind of result. */
      type: 'accepted'
      /** The store written. */
      storeKey: string
      /** The version the op made, or with `duplicate` the current one. */
      version: number
      /** The state at that version. */
      state: unknown
      /** The op was processed before, and what it made is no longer at hand. */
      duplicate?: true
      /** With `duplicate`, when known: the version the op made. */
      opVersion?: number
      /** For a patch proposal, when shorter than `state`: the patches from its base to `version`. */
      patches?: Patch[]
      /** The op deleted the store (no `state`). */
      deleted?: true
    }
  /** The base was stale: here is the current truth. */
  | {
      /** The kind of result. */
      type: 'conflict'
      /** The store proposed on. */
      storeKey: string
      /** Its current version. */
      version: number
      /** Its current state. */
      state: unknown
      /** When shorter than `state`: the patches from the proposal's base to `version`. */
      patches?: Patch[]
      /** The store is deleted, at `version` (no `state`). */
      deleted?: true
      /** The store was deleted at this version, after the proposal's base, and created again since. */
      deletedAt?: number
    }
  /** Refused: for good (recorded, a retry gets the same), or without a decision (unknown client, another epoch, a reused opId). */
  | {
      /** The kind of result. */
      type: 'refused'
      /** Why; its `status` is the HTTP answer. */
      error: ZunoError
    }

/** A proposal waiting for its event. */
interface Waiter {
  seq: number
  resolve: () => void
}

/** Who proposes: the principal's id (`''` when anonymous) scopes the client's ids. */
export interface Proposer {
  /** The authenticated principal's id; client ids are only unique within it. */
  principal: string
}

/**
 * The server's universe: the source of truth. Clients propose through a sync adapter; server
 * code reads and writes the same stores, and its writes are checked, logged and streamed like any
 * client's. States it holds are frozen: what `get()` and `snapshot()` return cannot be mutated.
 */
export class AuthoritativeUniverse<
  TStores extends Record<string, unknown> = Record<string, unknown>,
  TOtherKey extends string = string,
  TActions extends Record<string, unknown> = Record<string, unknown>,
> extends Universe<
  TStores,
  TOtherKey
> {
  readonly role = 'authoritative' as const
  /**
   * Settles once the storage has been read. The adapters' requests wait for it, but your own code
   * does not: await it before `snapshot()`, `cursor` or a server render on a fresh universe, which
   * otherwise throw `unavailable` ("The universe is still loading").
   */
  readonly ready: Promise<void>
  readonly #storage: Storage
  readonly #ownsStorage: boolean
  /** What each key is declared as: initial state, schema, ids, merge and rule, by exact key or by family. */
  readonly #specOf: SpecOf
  readonly #allowStore: (storeKey: string) => boolean
  /** Stores declared by their exact key: they exist, at version 0, from the start. */
  readonly #declaredAtStart: ReadonlySet<string>
  readonly #retention: number
  readonly #retentionBytes: number
  readonly #maxStores: number
  readonly #maxStateBytes: number | undefined
  readonly #listeners = new Set<(entry: LogEntry) => void>()
  /** Committed events waiting to be applied, so a write made by a listener keeps log order. */
  readonly #arrivals: CommittedEvent[] = []
  #applying = false
  #log: EventLog | undefined
  /** Proposals waiting for their event, and resumes waiting for this instance to catch up: a set, so a timed-out one leaves in O(1). */
  readonly #waiters = new Set<Waiter>()
  /** Set once `ready` has settled successfully, so a write need not wait a turn for it. */
  #started = false
  #stopCommits: (() => void) | undefined
  #stopResets: (() => void) | undefined
  readonly #resetListeners = new Set<() => void>()
  /** Names this instance on the storage's bus: its own signals come back to it and are skipped. */
  readonly #instanceId = randomId()
  readonly #signalListeners = new Set<(signal: InstanceSignal) => void>()
  #stopBus: (() => void) | undefined
  /** Server writes are a client of their own, one op at a time, in the order `set` was called. */
  #server = { clientId: newClientId(), opId: 0 }
  #serverWrites: Promise<unknown> = Promise.resolve()
  /** Stores that exist for clients (declared, or written at least once); kept as a count so a check is O(1). */
  #visibleCount = 0
  /** Whether any store of the app has an `authorize` rule (see {@link allows}): without one, the sync server skips asking. */
  readonly storeRules: boolean
  readonly #actionTimeoutMs: number
  /** Stores known newer than this instance holds them, until its follow of the storage brings them: what the next action runs on. */
  readonly #ahead = new Map<string, StoreRead>()
  /** The end of the queue of client actions running and committing, one at a time. */
  #actionTurn: Promise<void> = Promise.resolve()
  /** Every action by name: the app's, with the server-only implementations over them. */
  readonly #actions = new Map<string, { args: ActionSpec['args']; run: ServerAction; inApp: boolean }>()
  readonly #patchHistory: number
  /** Per store, the patches of its latest versions (up to `version`), newest last: a whole write starts it over. */
  readonly #recentPatches = new Map<string, RecentPatches>()
  /** Stores deleted, and not created again since: they show their initial state at their tombstone's version. */
  readonly #deleted = new Set<string>()
  /** Each store's latest deletion (as its storage keeps it), kept when it is created again: snapshots tell it. */
  readonly #lastDeletion = new Map<string, number>()
  /** Set when the storage is read lazily: which stores stay in memory. Absent, every store is in memory. */
  readonly #hot: HotStores | undefined
  /** Stores with a cell that has not been read yet (declared ones, and those server code asked for, before their read). */
  readonly #unloaded = new Set<string>()
  /** Reads in flight, by store: a second request for a store waits for the first read. */
  readonly #loading = new Map<string, Promise<void>>()
  /** The resume log's history being read after a start (`Storage.recent`): resumes from before the start wait for it. */
  #backfilling: Promise<void> | undefined
  /** A read of every store under way, which requests that come meanwhile share. */
  #readingEvery: Promise<StoresRead> | undefined
  /** Stores server code holds through `store()`: kept in memory for good. */
  readonly #kept = new Set<string>()
  /** On a storage read lazily: how many stores are written and not deleted, from the storage's count and each event since. */
  #writtenCount = 0
  /** Set by `#publish` when it had to guess whether a change's store existed (an older release wrote the change). */
  #guessed = false
  /** The seq of the last change guessed so, and when it came: the storage is asked for a count once they stop. */
  #lastGuess = { seq: 0, at: 0 }
  #countTimer: ReturnType<typeof setTimeout> | undefined
  /** A count is being asked of the storage: one at a time (each corrects from its own seq). */
  #recounting = false
  /** When the last count was asked: the next waits `#recountMs` after it. */
  #lastCountAt = Number.NEGATIVE_INFINITY
  readonly #recountMs: number
  /** While a count is asked of the storage: `#writtenCount` after each seq applied, to correct it as of the count's seq. */
  #countsBySeq: Map<number, number> | undefined
  #closed = false

  constructor(options: UniverseOptions<Schemas> & AppActions = {}) {
    super()
    this.#storage = options.storage ?? createMemoryStorage()
    this.#ownsStorage = options.storage === undefined
    const declarations: Record<string, KeyDeclaration> = {}
    const families = Object.keys(options.appStores ?? {}).filter(isFamily)
    // A key given beside the app (an initial state in `stores`, say) keeps the rest of its declaration,
    // its family's if it has no exact one: overriding `doc:1`'s initial state must not drop its rule.
    const declare = (key: string, part: KeyDeclaration) => {
      const family = Object.hasOwn(declarations, key) ? undefined : families.find((pattern) => compilePattern(pattern).match.test(key))
      declarations[key] = family === undefined ? { ...declarations[key], ...part } : { ...declarations[family], pattern: family, ...part }
    }
    for (const [key, spec] of Object.entries(options.appStores ?? {})) declarations[key] = { ...spec, initial: deepFreeze(toJsonValue(spec.initial, key)) }
    for (const [key, initial] of Object.entries(options.stores ?? {})) declare(key, { initial: deepFreeze(toJsonValue(initial, key)) })
    for (const [key, schema] of Object.entries(options.schemas ?? {})) declare(key, { schema })
    for (const [key, ids] of Object.entries(options.ids ?? {})) declare(key, { ids })
    for (const key of options.merge ?? []) declare(key, { merge: true })
    const specOf = storeSpecs(declarations)
    this.#specOf = specOf
    this.storeRules = Object.values(declarations).some((declaration) => declaration.authorize !== undefined)
    this.#allowStore = options.allowStore ?? ((storeKey) => specOf(storeKey)?.declared === true)
    this.#retention = options.retention ?? 10_000
    this.#retentionBytes = options.retentionBytes ?? 64 * 1024 * 1024
    this.#maxStores = options.maxStores ?? 10_000
    this.#recountMs = options.recountEveryMs ?? 60_000
    this.#maxStateBytes = options.maxStateBytes
    this.#actionTimeoutMs = options.actionTimeoutMs ?? 10_000
    this.#patchHistory = options.patchHistory ?? 64
    const hotStores = options.hotStores ?? 10_000
    if (!Number.isSafeInteger(hotStores) || hotStores < 0) throw new TypeError('hotStores must be an integer ≥ 0')
    this.#hot = this.#storage.read === undefined ? undefined : new HotStores(hotStores, (key) => this.#evict(key))
    if (!Number.isSafeInteger(this.#patchHistory) || this.#patchHistory < 0) throw new TypeError('patchHistory must be an integer ≥ 0')
    // Declared stores exist from the start; a family's exist once touched (there are as many as keys).
    this.#declaredAtStart = new Set(Object.keys(declarations).filter((key) => !isFamily(key) && this.#isDeclared(key)))
    for (const key of this.#declaredAtStart) this.cell(key, this.#initialOf(key))
    if (this.#hot !== undefined) for (const key of this.#declaredAtStart) this.#unloaded.add(key)
    this.#visibleCount = this.#declaredAtStart.size
    const { appActions = {}, actions = {} } = options
    for (const [name, spec] of Object.entries(appActions)) this.#actions.set(name, { args: spec.args, run: spec.run as ServerAction, inApp: true })
    for (const [name, run] of Object.entries(actions)) {
      if (!ACTION_NAME_PATTERN.test(name)) throw new TypeError(`Action name ${JSON.stringify(name)} must match ${ACTION_NAME_PATTERN}`)
      if (typeof run !== 'function') throw new TypeError(`The server action ${JSON.stringify(name)} is not a function`)
      const shared = Object.hasOwn(appActions, name) ? appActions[name] : undefined
      this.#actions.set(name, { args: shared?.args, run, inApp: shared !== undefined })
    }
    this.#stopBus = this.#storage.bus?.subscribe(
      (message) => this.#heard(message),
      // A revocation may have been published while this instance did not hear: ask every rule again.
      () => notifyEach(this.#signalListeners, { type: 'revalidateAll' }, 'a signal listener'),
    )
    this.ready = this.#start()
    // Failures surface through `ready` and every request; this only avoids an unhandled rejection.
    this.ready.catch(() => {})
  }

  async #start(): Promise<void> {
    await this.#load()
    this.#stopCommits = this.#storage.onCommit((event) => this.#arrive(event))
    this.#stopResets = this.#storage.onReset?.(() => {
      this.#load()
        .then(() => this.#readUnloaded())
        .then(
        () => notifyEach(this.#resetListeners, undefined, 'a reset listener of the universe'),
          (error: unknown) => console.error('[zuno] reloading the storage after a new epoch failed', error),
        )
    })
    await this.#readUnloaded()
    this.#started = true
  }

  /**
   * Fills the resume log with the events before the start, once the storage reads them (after
   * `ready`: a start does not wait for history). Events applied meanwhile stay; stores that kept
   * patches since keep only those.
   */
  async #backfill(log: EventLog): Promise<void> {
    // After `ready` has settled: an in-process storage reads (and parses) them synchronously.
    await new Promise((resolve) => setTimeout(resolve, 0))
    const events = await (this.#storage.recent as NonNullable<Storage['recent']>).call(this.#storage)
    // Another epoch began meanwhile: these belong to the history replaced.
    if (this.#log !== log) return
    const kept = log.backfill(events.map((event) => logEntry(event)))
    const patched = new Set(this.#recentPatches.keys())
    for (const event of events.slice(events.length - kept)) {
      for (const change of event.changes ?? [event]) if (!patched.has(change.storeKey)) this.#rememberPatch(change.storeKey, change.version, change.patch)
    }
  }

  /** On a storage read lazily: reads the stores that must always be in memory (declared ones, those server code holds). */
  async #readUnloaded(): Promise<void> {
    if (this.#unloaded.size > 0) await this.#ensure([...this.#unloaded])
  }

  /** Reads the storage's image: at start, and again when its history moved to a new epoch. */
  async #load(): Promise<void> {
    const image = await this.#storage.load()
    const recent = image.recent ?? []
    const log = new EventLog(image.epoch, image.seq - recent.length, this.#retention, this.#retentionBytes)
    // What was known ahead, and the patches, belong to the history being replaced; the recent
    // events' patches (a storage that keeps them: Redis) let merges reach back past the start.
    this.#ahead.clear()
    this.#recentPatches.clear()
    for (const event of recent) {
      log.append(logEntry(event))
      this.#rememberPatches(event)
    }
    const reloading = this.#log !== undefined
    this.#log = log
    if (this.#storage.recent !== undefined) {
      const backfilling = this.#backfill(log).catch((error: unknown) => console.error('[zuno] reading the recent events after a start failed; resumes from before it get a snapshot', error))
      this.#backfilling = backfilling
      backfilling.then(() => {
        if (this.#backfilling === backfilling) this.#backfilling = undefined
      })
    }
    this.#deleted.clear()
    this.#lastDeletion.clear()
    if (this.#hot !== undefined) {
      // Read lazily: nothing held is known to be current in this history. What must stay is read again.
      // The image's count is the storage's own: nothing guessed before it is left to correct.
      this.#writtenCount = image.storeCount ?? 0
      clearTimeout(this.#countTimer)
      this.#countTimer = undefined
      this.#lastGuess = { seq: 0, at: 0 }
      this.#hot.clear()
      for (const cell of [...this.cells()]) {
        if (this.#declaredAtStart.has(cell.key) || this.#kept.has(cell.key)) this.#unloaded.add(cell.key)
        else this.forget(cell.key)
      }
      if (reloading) this.#wakeAll()
      return
    }
    for (const [key, stored] of image.stores) {
      this.#publish(key, deepFreeze(stored.state), stored.version, stored.deleted === true)
      if (stored.deletedAt !== undefined) this.#lastDeletion.set(key, stored.deletedAt)
    }
    if (reloading) {
      // A new epoch: stores it does not have start over from their declared state.
      for (const cell of this.cells()) {
        if (!image.stores.has(cell.key)) cell.publish(this.#initialOf(cell.key), 0)
      }
      this.#visibleCount = [...this.cells()].filter((cell) => this.#isVisible(cell)).length
      this.#wakeAll()
    }
  }

  /**
   * Tells every instance that shares the storage that the access of `principalId` changed: each
   * open stream of theirs asks `authorize` (and the app's rules) again, with the principal object
   * it was opened with, and stops carrying at once the stores they may no longer read (the client
   * hears `revoked`). The streams of this instance are checked before the promise settles; others
   * as the storage's bus (Redis pub/sub) brings them the signal. Keep what the rules read about a
   * principal's rights where they can see it change (a membership table, say), not only on the
   * principal object `authenticate` made.
   */
  revalidate(principalId: string): Promise<void> {
    return this.signal({ type: 'revalidate', principal: principalId })
  }

  /** Sends a signal to the sync servers of this instance at once, then to the other instances on the storage's bus. */
  async signal(signal: InstanceSignal): Promise<void> {
    notifyEach(this.#signalListeners, signal, 'a signal listener')
    await this.#storage.bus?.publish(JSON.stringify({ from: this.#instanceId, signal }))
  }

  /** Calls `listener` with every signal, this instance's and the others'; returns the unsubscribe. */
  onSignal(listener: (signal: InstanceSignal) => void): () => void {
    this.#signalListeners.add(listener)
    return () => {
      this.#signalListeners.delete(listener)
    }
  }

  /** A message on the storage's bus: another instance's signal (this one's own were delivered already). */
  #heard(message: string): void {
    let heard: { from?: unknown; signal?: InstanceSignal }
    try {
      heard = JSON.parse(message) as typeof heard
    } catch {
      return
    }
    if (heard.from === this.#instanceId || typeof heard.signal?.type !== 'string') return
    notifyEach(this.#signalListeners, heard.signal, 'a signal listener')
  }

  /** Calls `listener` after the universe reloaded a storage that moved to a new epoch; returns the unsubscribe. */
  onReset(listener: () => void): () => void {
    this.#resetListeners.add(listener)
    return () => {
      this.#resetListeners.delete(listener)
    }
  }

  /** The in-memory log, once ready. */
  #readyLog(): EventLog {
    if (this.#log === undefined) throw new ZunoError('unavailable', 'The universe is still loading')
    return this.#log
  }

  /** The epoch of the history this universe serves: proposals must name it. */
  get epoch(): string {
    return this.#readyLog().epoch
  }

  /** Offers a client's op, already validated as a `POST /sync` body. */
  propose(request: SyncRequest | PatchRequest, proposer: Proposer): Promise<ProposalResult> {
    if (!this.#started) return this.ready.then(() => this.propose(request, proposer))
    if (this.#hot !== undefined) return this.#withStores([request.storeKey], () => this.#proposeNow(request, proposer))
    return this.#proposeNow(request, proposer)
  }

  #proposeNow(request: SyncRequest | PatchRequest, proposer: Proposer): Promise<ProposalResult> {
    if ('patch' in request) return this.#proposePatch(request, proposer.principal)
    const stateJson = JSON.stringify(request.state)
    return this.#decide(request, identify(request, proposer.principal, stateJson), stateJson, false)
  }

  /**
   * Refuses a client's op for good (the sync server's authorization said no): recorded like an
   * acceptance, so a retry gets the same answer and the client's next op can follow.
   */
  async refuse(request: SyncRequest | PatchRequest, proposer: Proposer, error: ZunoError): Promise<ProposalResult> {
    if (!this.#started) await this.ready
    this.#checkHealth()
    const payload = 'patch' in request ? patchPayload(JSON.stringify(request.patch)) : JSON.stringify(request.state)
    return this.#withStores([request.storeKey], () => this.#record(request, identify(request, proposer.principal, payload), error))
  }

  /**
   * Runs `work` with the stores in memory, current, and kept there until it settles. On a storage
   * that is not read lazily every store is in memory: `work` runs at once.
   */
  async #withStores<T>(keys: readonly string[], work: () => T | Promise<T>): Promise<T> {
    const hot = this.#hot
    if (hot === undefined) return work()
    hot.pin(keys)
    try {
      const reading = this.#ensure(keys)
      if (reading !== undefined) await reading
      return await work()
    } finally {
      hot.unpin(keys)
    }
  }

  /** Whether a store is in memory and current: always, on a storage that is not read lazily. */
  #inMemory(key: string): boolean {
    return this.#hot === undefined || (this.existing(key) !== undefined && !this.#unloaded.has(key))
  }

  /**
   * On a storage read lazily: reads the stores that are not in memory, and resolves once each is,
   * current as of this instance's position; `undefined` when all are already (no turn spent).
   * Callers pin the stores first (or they are never evicted), so a store read stays until used.
   */
  #ensure(keys: readonly string[]): Promise<void> | undefined {
    const hot = this.#hot
    if (hot === undefined) return undefined
    let waits: Promise<void>[] | undefined
    let toRead: string[] | undefined
    for (const key of keys) {
      if (this.#inMemory(key)) hot.touch(key)
      else {
        const loading = this.#loading.get(key)
        if (loading === undefined) (toRead ??= []).push(key)
        else (waits ??= []).push(loading)
      }
    }
    if (toRead !== undefined) {
      const reading = this.#readStores(toRead)
      for (const key of toRead) this.#loading.set(key, reading)
      ;(waits ??= []).push(reading)
    }
    if (waits === undefined) return undefined
    return Promise.all(waits).then(() => this.#ensure(keys))
  }

  /** Reads stores into memory, brought on by the events this instance applied while they were read. */
  async #readStores(keys: readonly string[]): Promise<void> {
    try {
      const wanted = new Set(keys)
      for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
        const latest = this.#broughtOn(await this.#readCurrent(keys), wanted)
        if (latest !== undefined) return this.#install(keys, latest)
      }
      throw new ZunoError('unavailable', 'The stores read moved on faster than this instance could follow; try again', { retryAfter: 1 })
    } finally {
      for (const key of keys) this.#loading.delete(key)
    }
  }

  /**
   * Reads stores (every one, with `undefined`) from the storage, then waits until this instance has
   * applied everything the read includes: only then may it be shown beside this instance's events.
   */
  async #readCurrent(keys: readonly string[] | undefined): Promise<StoresRead> {
    const read = this.#storage.read as NonNullable<Storage['read']>
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const log = this.#readyLog()
      const { epoch, seq, stores } = await withTimeout(read.call(this.#storage, keys), READ_TIMEOUT_MS, 'The storage did not answer a read')
      // A read of another history (the storage moved to a new epoch, and this instance has not
      // reloaded yet): never shown under this one's cursor. Read again once it has.
      if (epoch !== log.epoch) {
        await this.#nextEvent(READ_RETRY_MS)
        continue
      }
      await this.#applied(eventIdOf(log.epoch, seq), READ_CATCH_UP_MS)
      if (this.#log === log && log.lastSeq >= seq) return { log, seq, stores }
    }
    throw new ZunoError('unavailable', 'This instance could not catch up with its storage to read a store', { retryAfter: 1 })
  }

  /**
   * What was read at `read.seq`, brought on to this instance's position by the changes it applied
   * since (of the stores in `keys`, or all); `undefined` when its log no longer holds them.
   */
  #broughtOn(read: StoresRead, keys: ReadonlySet<string> | undefined): Map<string, StoreState> | undefined {
    const log = this.#readyLog()
    if (log !== read.log) return undefined
    if (log.lastSeq === read.seq) return read.stores
    const since = log.since(eventIdOf(log.epoch, read.seq))
    if (since === undefined) return undefined
    const latest = new Map(read.stores)
    for (const { event } of since) {
      for (const change of event.changes ?? [event]) {
        if (keys !== undefined && !keys.has(change.storeKey)) continue
        const before = latest.get(change.storeKey)
        if (change.deleted) latest.set(change.storeKey, { version: change.version, state: undefined, deleted: true })
        else {
          const deletedAt = before?.deleted ? before.version : before?.deletedAt
          latest.set(change.storeKey, deletedAt === undefined ? { version: change.version, state: change.state } : { version: change.version, state: change.state, deletedAt })
        }
      }
    }
    return latest
  }

  /** Puts stores read (and brought on) in memory; a key the storage never had shows its initial state at version 0. */
  #install(keys: readonly string[], latest: ReadonlyMap<string, StoreState>): void {
    for (const key of keys) {
      if (this.#inMemory(key)) continue
      const cell = this.cell(key)
      const stored = latest.get(key)
      this.#deleted.delete(key)
      this.#lastDeletion.delete(key)
      if (stored === undefined) cell.publish(this.#initialOf(key), 0)
      else if (stored.deleted) {
        this.#deleted.add(key)
        this.#lastDeletion.set(key, stored.version)
        cell.publish(this.#initialOf(key), stored.version)
      } else {
        if (stored.deletedAt !== undefined) this.#lastDeletion.set(key, stored.deletedAt)
        cell.publish(deepFreeze(stored.state), stored.version)
      }
      this.#unloaded.delete(key)
      if (!this.#declaredAtStart.has(key) && !this.#kept.has(key)) this.#hot?.add(key)
    }
  }

  /** Drops a store from memory: it is read again when next needed. */
  #evict(key: string): void {
    this.forget(key)
    this.#deleted.delete(key)
    this.#lastDeletion.delete(key)
    this.#recentPatches.delete(key)
  }

  /**
   * Server code holds a store (`universe.store(key)`): on a storage read lazily it stays in memory
   * for good, and is read now if it is not in memory yet.
   */
  protected override storeOpened(key: string): void {
    if (this.#hot === undefined || this.#kept.has(key) || this.#declaredAtStart.has(key)) return
    assertStoreKey(key)
    this.#kept.add(key)
    if (this.#inMemory(key)) {
      this.#hot.remove(key)
      return
    }
    this.#unloaded.add(key)
    // Before the start, the start reads it with the declared stores.
    if (this.#started) this.#ensure([key])?.catch((error: unknown) => console.error(`[zuno] reading the store ${JSON.stringify(key)} failed`, error))
  }

  /**
   * Reads stores into memory, when the storage is read lazily (it has `read`): `snapshot(keys)`
   * and `store(key).get()` then show them, until they are among the least recently used of more
   * than `hotStores` (to be sure of them for a while, {@link hold} them). On other storages every
   * store is in memory: resolves at once.
   */
  async load(storeKeys: readonly string[]): Promise<void> {
    if (!this.#started) await this.ready
    for (const key of storeKeys) assertStoreKey(key)
    await this.#withStores(storeKeys, () => {})
  }

  /**
   * Holds stores in memory for a request that shows them after an await (the sync server's
   * snapshots): until `release()`, `snapshot()` of the held stores is current whenever it is called.
   * Without `storeKeys`, every store: on a storage read lazily, they are read whole (a stream or
   * `GET /state` of every store) and never enter memory for longer than the request.
   */
  async hold(storeKeys?: readonly string[]): Promise<HeldStores> {
    if (!this.#started) await this.ready
    const hot = this.#hot
    if (hot === undefined) return { snapshot: (keys = storeKeys, readable) => this.snapshot(keys, readable), release: () => {} }
    if (storeKeys === undefined) return this.#holdEvery()
    hot.pin(storeKeys)
    try {
      await this.#ensure(storeKeys)
    } catch (error) {
      hot.unpin(storeKeys)
      throw error
    }
    let held = true
    return {
      snapshot: (keys = storeKeys, readable) => this.snapshot(keys, readable),
      release: () => {
        if (held) hot.unpin(storeKeys)
        held = false
      },
    }
  }

  /** Every store, read whole from a storage read lazily: shown as of this instance's position whenever asked. */
  async #holdEvery(): Promise<HeldStores> {
    // One request must not make the server read (and encode) a million stores: past the bound, the
    // stores are named (`?stores=`, follows), as an app with that many would anyway.
    const most = Math.max(EVERY_STORE_READ_LIMIT, this.#hot?.limit ?? 0)
    if (this.#storeCount() > most) {
      throw new ZunoError('too_many_stores', `More than ${most} stores: name the stores to read (?stores=) rather than reading every one`)
    }
    // Requests that come together (or within a second) share one read: a storm of them must not
    // read the storage once each. It is let go after that second, so memory follows the hot set again.
    let reading = this.#readingEvery
    if (reading === undefined) {
      reading = this.#readCurrent(undefined)
      this.#readingEvery = reading
      const forget = () => {
        if (this.#readingEvery === reading) this.#readingEvery = undefined
      }
      reading.then(() => setTimeout(forget, EVERY_READ_SHARED_MS).unref?.(), forget)
    }
    const read = await reading
    return {
      snapshot: (storeKeys, readable) => {
        const latest = this.#broughtOn(read, storeKeys === undefined ? undefined : new Set(storeKeys))
        if (latest === undefined) throw new ZunoError('unavailable', 'The stores read moved on faster than this instance could follow; try again', { retryAfter: 1 })
        const stores: Record<string, StoreState> = {}
        const shown = (key: string) => (storeKeys === undefined || storeKeys.includes(key)) && (readable === undefined || readable(key))
        // Declared stores never written exist at version 0; they are always in memory.
        for (const key of this.#declaredAtStart) {
          const cell = this.existing(key)
          if (!latest.has(key) && cell !== undefined && shown(key)) stores[key] = { version: 0, state: cell.get() }
        }
        for (const [key, stored] of latest) if (shown(key)) stores[key] = stored.deleted ? ({ version: stored.version, deleted: true } as StoreState) : stored
        return { stores, cursor: this.#readyLog().cursor }
      },
      release: () => {},
    }
  }

  /**
   * Decides a patch proposal: applied to the store's state when its base is current, or, for a
   * store that merges, over the changes made since its base when none of them touched what it
   * touches. Then checked and committed like a whole state.
   */
  async #proposePatch(request: PatchRequest, principal: string): Promise<ProposalResult> {
    this.#checkHealth()
    const { storeKey, baseVersion, patch } = request
    // Encoded once: the digest covers it, and its length says whether it is worth keeping.
    const patchJson = JSON.stringify(patch)
    const op = identify(request, principal, patchPayload(patchJson))
    // Before anything else, as the storage would: a base of another history is no base here.
    if (request.epoch !== this.epoch) return this.#answer(storeKey, { type: 'epoch_changed', epoch: this.epoch })
    // A client that saw a version this instance has not applied yet (another instance's): the
    // patch applies to that version only, so wait a little for the follow to bring it.
    for (let waited = 0; baseVersion > this.#versionOf(storeKey) && waited < 20; waited++) await this.#nextEvent(50)
    const version = this.#versionOf(storeKey)
    // Still ahead (or a resend of an older history's op): only the storage can say what it knows of it.
    if (baseVersion > version) return this.#commitPatched(request, op, undefined)
    const current = this.#readForAction(storeKey)
    if (baseVersion === version) {
      try {
        return this.#commitPatched(request, op, patched(current, patch, patchJson.length))
      } catch (error) {
        if (!(error instanceof PatchError)) throw error
        // Not for good: the client sends the same op again with its whole state.
        return { type: 'refused', error: new ZunoError('patch_mismatch', `The patch does not apply to version ${version}: ${error.message}`) }
      }
    }
    // An empty patch merges as nothing: its updater wrote nothing on the base it saw, and may write
    // something on the newer state (an item it could not see yet), so it rebases like any conflict.
    // A merge right after a start may need the patches of the history, read after it.
    if (this.#backfilling !== undefined && this.#specOf(storeKey)?.merge === true && patch.length > 0) await this.#backfilling
    const theirs = this.#specOf(storeKey)?.merge === true && patch.length > 0 ? this.#patchesSince(storeKey, baseVersion, version) : undefined
    if (theirs !== undefined && this.#mergeable(storeKey, theirs, patch)) {
      try {
        return this.#commitPatched(request, op, patched(current, patch, patchJson.length))
      } catch (error) {
        if (!(error instanceof PatchError)) throw error
      }
    }
    return this.#commitPatched(request, op, undefined)
  }

  /**
   * Commits what a patch made, on the version it was applied to, after the same checks as a whole
   * state; with nothing made (a base it cannot be applied on here), asks the storage only what it
   * knows of the op: a retry's answer, an unknown client, or else the conflict with its current truth.
   */
  async #commitPatched(request: PatchRequest, op: OpIdentity, made: Patched | undefined): Promise<ProposalResult> {
    const { storeKey, baseVersion, epoch } = request
    if (made === undefined) {
      // No store is ever at version -1: the storage's compare fails whatever it holds.
      const write: Write = { storeKey, baseVersion: -1, state: null }
      return this.#settle(storeKey, await this.#storage.commit({ ...op, epoch, write }), baseVersion)
    }
    let { state, heldBytes } = made as { state: unknown; heldBytes: number | undefined }
    // What is streamed and kept is the change, not what was sent: a value set and then overwritten
    // within the patch never reaches anyone.
    let patch = overlapsItself(made.patch) ? this.#diff(storeKey, state) : shorterThan(state, made.patch, made.patchBytes)
    try {
      this.#admit(storeKey, this.#maxStateBytes === undefined ? '' : JSON.stringify(state), false)
      const schema = this.#specOf(storeKey)?.schema
      if (schema !== undefined) {
        const output = await validateState(schema, storeKey, state)
        if (output !== state) {
          state = structuredClone(toJsonValue(output, storeKey))
          this.#admit(storeKey, this.#maxStateBytes === undefined ? '' : JSON.stringify(state), false)
          patch = this.#diff(storeKey, state)
          heldBytes = undefined
        }
      }
    } catch (error) {
      if (!isZunoError(error)) throw error
      return this.#record(request, op, error)
    }
    const { principal, clientId, opId, digest } = op
    const write: Write = { storeKey, baseVersion: made.base, state, patch, stateBytes: heldBytes }
    return this.#settle(storeKey, await this.#storage.commit({ principal, clientId, opId, digest, epoch, write }), baseVersion)
  }

  /** Whether a patch merges over the patches since its base: it touches nothing they touched, naming items by their declared ids. */
  #mergeable(storeKey: string, theirs: readonly Patch[], ours: Patch): boolean {
    const ids = this.#specOf(storeKey)?.ids ?? []
    if (!idStepsDeclared(ours, ids) || !theirs.every((patch) => idStepsDeclared(patch, ids))) return false
    return !patchesOverlap(theirs, ours)
  }

  #versionOf(storeKey: string): number {
    return this.#readForAction(storeKey).version
  }

  /** The patches that took a store from `base` to `version`, one per version, if all are kept. */
  #patchesSince(storeKey: string, base: number, version: number): Patch[] | undefined {
    const kept = this.#keptSince(storeKey, base, version)
    return kept?.map(({ patch }) => patch)
  }

  /** The kept patches (with their lengths) that took a store from `base` to `version`, if all are kept. */
  #keptSince(storeKey: string, base: number, version: number): RecentPatches['patches'] | undefined {
    const recent = this.#recentPatches.get(storeKey)
    if (recent === undefined || recent.version < version || base >= version) return undefined
    const end = recent.patches.length - (recent.version - version)
    const start = end - (version - base)
    return start < 0 ? undefined : recent.patches.slice(start, end)
  }

  /** The patches from `base` to `version`, when kept and shorter than `state` as JSON: what an answer carries instead of the state. */
  #shorterPatches(storeKey: string, base: number | undefined, version: number, state: unknown): Patch[] | undefined {
    if (base === undefined) return undefined
    const kept = this.#keptSince(storeKey, base, version)
    if (kept === undefined) return undefined
    // Their lengths were measured as they were kept: a stale proposal costs no encoding of them.
    let length = 1
    for (const { bytes } of kept) length += bytes + 1
    return jsonLongerThan(state, length) ? kept.map(({ patch }) => patch) : undefined
  }

  /** Keeps the patches of every store an event changed. */
  #rememberPatches(event: CommittedEvent): void {
    if (event.changes === undefined) this.#rememberPatch(event.storeKey, event.version, event.patch)
    else for (const change of event.changes) this.#rememberPatch(change.storeKey, change.version, change.patch)
  }

  /** Keeps a store's latest patch (or, for a whole write, starts its patches over). */
  #rememberPatch(storeKey: string, version: number, patch: Patch | undefined): void {
    // Read lazily, only stores in memory keep patches: the others' would grow with every store written.
    // Those about to be read for good (declared, held: at start, the recent events come first) keep them too.
    if (patch === undefined || this.#patchHistory === 0 || (!this.#inMemory(storeKey) && !this.#unloaded.has(storeKey))) {
      this.#recentPatches.delete(storeKey)
      return
    }
    const bytes = JSON.stringify(patch).length
    let recent = this.#recentPatches.get(storeKey)
    if (recent === undefined || recent.version !== version - 1) {
      recent = { version: version - 1, patches: [], bytes: 0 }
      this.#recentPatches.set(storeKey, recent)
    }
    recent.version = version
    recent.patches.push({ patch, bytes })
    recent.bytes += bytes
    // Bounded in number and in bytes: a store's patches never hold more than a few states would.
    while (recent.patches.length > this.#patchHistory || (recent.bytes > PATCH_HISTORY_BYTES && recent.patches.length > 1)) {
      recent.bytes -= (recent.patches.shift() as { bytes: number }).bytes
    }
  }

  /**
   * Runs a client's action, already validated as a `POST /sync` body, on the current state and
   * commits what it wrote as one change, or records its refusal. A store it used that moves before
   * the commit (another instance's write, a schema that awaited) makes it run again.
   */
  async proposeAction(request: ActionRequest, caller: ActionCaller): Promise<ActionResult> {
    if (!this.#started) await this.ready
    this.#checkHealth()
    const op = actionIdentity(request, caller.principal)
    const action = this.#actions.get(request.action)
    // Recorded like any refusal for good, after the client's record: a retry of an op processed
    // before a deploy removed its action gets its first answer, not this one.
    if (action === undefined) return this.#recordAction(request, op, new ZunoError('unknown_action', `This server has no action ${JSON.stringify(request.action)}`))
    let args: unknown = request.args
    try {
      if (action.args !== undefined) args = await validateArgs(action.args, request.action, request.args)
      // An app action without a schema takes none; one that exists only here checks its own.
      else if (action.inApp && request.args !== undefined) throw new ZunoError('invalid_args', `The action ${JSON.stringify(request.action)} takes no arguments`)
    } catch (error) {
      if (!isZunoError(error)) throw error
      return this.#recordAction(request, op, error)
    }
    const commitAction = this.#storage.commitAction
    if (commitAction === undefined) throw new ZunoError('unavailable', 'This storage cannot run actions', { retryAfter: 1 })
    // On a storage read lazily, a store the action reaches that is not in memory stops the run: it is
    // read, kept in memory until the action is answered, and the action runs again.
    const pinned: string[] = []
    try {
      return await this.#runAction(request, caller, op, action, args, commitAction, pinned)
    } finally {
      this.#hot?.unpin(pinned)
    }
  }

  async #runAction(
    request: ActionRequest,
    caller: ActionCaller,
    op: OpIdentity,
    action: { run: ServerAction },
    args: unknown,
    commitAction: NonNullable<Storage['commitAction']>,
    pinned: string[],
  ): Promise<ActionResult> {
    const missing: string[] = []
    const reached = new Set(pinned)
    const read = (key: string): StoreRead => {
      assertStoreKey(key)
      if (!this.#inMemory(key)) {
        missing.push(key)
        throw new ZunoError('unavailable', `The store ${JSON.stringify(key)} is being read`)
      }
      // Kept in memory until the action is answered: its diff and its count of creations need it.
      if (this.#hot !== undefined && !reached.has(key)) {
        reached.add(key)
        this.#hot.pin([key])
        pinned.push(key)
      }
      return this.#readForAction(key)
    }
    let reads = 0
    for (let attempt = 0; attempt < ACTION_ATTEMPTS; attempt++) {
      // Each run reads the stores it lacked: more rounds than the limit means it reaches more stores than it may.
      if (missing.length > 0 && reads++ >= MAX_STORES_PER_ACTION) {
        return this.#recordAction(request, op, new ZunoError('action_failed', `An action may read and write ${MAX_STORES_PER_ACTION} stores at most`))
      }
      if (missing.length > 0) {
        // Caught or not by the action, a store it could not read makes this run void.
        const reading = missing.splice(0).filter((key) => !reached.has(key))
        for (const key of reading) reached.add(key)
        this.#hot?.pin(reading)
        pinned.push(...reading)
        await this.#ensure(reading)
        attempt -= 1
      }
      // One action at a time runs and commits here: two that ran on the same state at once would
      // both commit on the same versions, and all but one would have to run again.
      const attempted = await this.#oneAtATime(async () => {
        let effect: ActionEffect
        let writes: Write[]
        try {
          effect = await this.#withDeadline(
            runAction((tx, validArgs) => action.run(tx, validArgs, caller.context), args, read, allowedFor(caller), (key) => this.#initialOf(key)),
            request.action,
          )
          if (missing.length > 0) return { again: true as const }
          writes = await this.#admitWrites(effect)
        } catch (error) {
          if (missing.length > 0) return { again: true as const }
          return { refusal: actionError(error, request.action) }
        }
        const reads = []
        for (const [storeKey, { version }] of effect.reached) if (!effect.writes.has(storeKey)) reads.push({ storeKey, version })
        const { principal, clientId, opId, digest, resentAfterMs } = op
        const outcome = await commitAction.call(this.#storage, { principal, clientId, opId, digest, resentAfterMs, epoch: request.epoch, writes, reads })
        // The next action here runs on this one's result, even before this instance's follow of the
        // storage has brought it back (on Redis): otherwise it would run on the older state and fail
        // its commit against this instance's own write.
        // A deletion is known ahead as what a deleted store reads: its initial state.
        if (outcome.type === 'accepted') {
          for (const change of outcome.event.changes ?? [outcome.event]) {
            this.#knowAhead(change.storeKey, change.deleted ? { version: change.version, state: this.#initialOf(change.storeKey) } : change)
          }
        }
        return { outcome, effect }
      })
      if ('again' in attempted) continue
      if ('refusal' in attempted) return this.#recordAction(request, op, attempted.refusal)
      const { outcome, effect } = attempted
      if (outcome.type !== 'conflict') return this.#actionAnswer(outcome)
      const { storeKey } = outcome
      if (storeKey !== undefined && outcome.version > this.#readForAction(storeKey).version) {
        // Another instance's write, which the storage showed: run again on it at once, not after this
        // instance's follow has brought it. A store that moved too and was not shown fails the next
        // commit's check the same way.
        // `undefined` only: a store may hold JSON null, which is a state like any other.
        this.#knowAhead(storeKey, { version: outcome.version, state: outcome.state === undefined ? this.#initialOf(storeKey) : outcome.state })
      } else if (!this.#movedSince(effect)) {
        // Another instance's write that this one has not applied yet: run again once it has (or soon).
        await this.#nextEvent(100)
      }
    }
    throw new ZunoError('unavailable', `The action ${JSON.stringify(request.action)} lost the race for its stores ${ACTION_ATTEMPTS} times; try again`, { retryAfter: 1 })
  }

  /**
   * Runs an action as server code: on the current state, committed as one change and streamed like
   * a client's, its server-only implementation if it has one. Actions of server code run one at a
   * time, in call order, after the `set`s called before them. Resolves once committed; rejects with
   * the refusal (`action_refused`, `invalid_args`, `invalid_state`, …).
   */
  act<K extends keyof TActions & string>(name: K, ...[args]: ActionArgs<TActions[K]>): Promise<void> {
    const run = this.#serverWrites.then(() => this.#actAsServer(name, args === undefined ? undefined : structuredClone(args)))
    this.#serverWrites = run.catch(() => {})
    return run
  }

  async #actAsServer(name: string, args: unknown): Promise<void> {
    if (!this.#started) await this.ready
    const server = this.#server
    const opId = server.opId + 1
    const request: ActionRequest = { action: name, epoch: this.epoch, clientId: server.clientId, opId }
    if (args !== undefined) request.args = args
    let result: ActionResult
    try {
      result = await this.proposeAction(request, { principal: '', context: { principal: undefined } })
    } catch (error) {
      // In doubt: the op may or may not have landed. Later ops go under a fresh identity.
      this.#server = { clientId: newClientId(), opId: 0 }
      throw error
    }
    if (result.type === 'accepted') {
      server.opId = opId
      return
    }
    const { code } = result.error
    if (RECORDED_REFUSALS.has(code)) server.opId = opId
    if (code !== 'unknown_client' && code !== 'epoch_changed') throw result.error
    this.#server = { clientId: newClientId(), opId: 0 }
    return this.#actAsServer(name, args)
  }

  /** Refuses a client's action for good (the sync server's `authorizeAction` said no), recorded like an acceptance. */
  async refuseAction(request: ActionRequest, caller: ActionCaller, error: ZunoError): Promise<ActionResult> {
    if (!this.#started) await this.ready
    this.#checkHealth()
    return this.#recordAction(request, actionIdentity(request, caller.principal), error)
  }

  /**
   * `running`, or `action_failed` once it has run longer than the deadline: an action that never
   * settles must not hold the instance's other actions for good. Its late effect is dropped (its
   * transaction is closed by then, and nothing commits it).
   */
  #withDeadline<T>(running: T | Promise<T>, name: string): T | Promise<T> {
    if (!(running instanceof Promise)) return running
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ZunoError('action_failed', `The action ${JSON.stringify(name)} ran longer than ${this.#actionTimeoutMs} ms`)),
        this.#actionTimeoutMs,
      )
    })
    return Promise.race([running, deadline]).finally(() => clearTimeout(timer))
  }

  /** Runs `work` after every action `work` queued before it has run and committed. */
  async #oneAtATime<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.#actionTurn
    let done = () => {}
    this.#actionTurn = new Promise<void>((resolve) => (done = resolve))
    await previous
    try {
      return await work()
    } finally {
      done()
    }
  }

  /** Resolves when this universe applies its next event, or after `timeoutMs`. */
  #nextEvent(timeoutMs: number): Promise<void> {
    return this.catchUp(formatEventId(this.#readyLog().epoch, this.#readyLog().lastSeq + 1), timeoutMs) ?? Promise.resolve()
  }

  /** Keeps a store's newer state for the actions that run before this instance's follow brings it. */
  #knowAhead(storeKey: string, { version, state }: StoreRead): void {
    // Applied here already (an in-process storage delivers as it commits): nothing to know ahead.
    if ((this.existing(storeKey)?.version ?? 0) >= version) return
    const known = this.#ahead.get(storeKey)
    if (known === undefined || known.version < version) this.#ahead.set(storeKey, { version, state: deepFreeze(state) })
  }

  /** Whether a store the action reached has moved here since it ran. */
  #movedSince(effect: ActionEffect): boolean {
    for (const [key, { version }] of effect.reached) if ((this.existing(key)?.version ?? 0) !== version) return true
    return false
  }

  /**
   * A store as an action reaches it: its version and state here, or newer as this instance knows it
   * ahead of its follow of the storage (its own commits, a conflict's answer); its declared state at version 0.
   */
  #readForAction(key: string): StoreRead {
    assertStoreKey(key)
    const cell = this.existing(key)
    const ahead = this.#ahead.get(key)
    if (ahead !== undefined) {
      if (ahead.version > (cell?.version ?? 0)) return ahead
      this.#ahead.delete(key) // the follow has caught up
    }
    if (cell === undefined) return { version: 0, state: this.#initialOf(key) }
    return { version: cell.version, state: cell.get() }
  }

  /** Checks what an action did against the caller's rights, the stores' existence, the limits and the schemas: the writes to commit. */
  async #admitWrites(effect: ActionEffect): Promise<Write[]> {
    if (effect.reached.size > MAX_STORES_PER_ACTION) {
      throw new ZunoError('action_failed', `An action may read and write ${MAX_STORES_PER_ACTION} stores at most`)
    }
    let created = 0
    const writes: Write[] = []
    for (const [storeKey, written] of effect.writes) {
      const baseVersion = (effect.reached.get(storeKey) as StoreRead).version
      if (written === DELETED) {
        writes.push({ storeKey, baseVersion, state: undefined, deleted: true })
        continue
      }
      let state = structuredClone(toJsonValue(written, storeKey))
      const existing = this.existing(storeKey)
      if (existing === undefined || !this.#isVisible(existing)) created += 1
      this.#admit(storeKey, JSON.stringify(state), false, created - 1)
      const schema = this.#specOf(storeKey)?.schema
      if (schema !== undefined) state = structuredClone(toJsonValue(await validateState(schema, storeKey, state), storeKey))
      const stateJson = JSON.stringify(state)
      this.#admit(storeKey, stateJson, false, created - 1)
      writes.push({ storeKey, baseVersion, state, stateBytes: stateJson.length, patch: this.#diff(storeKey, state) })
    }
    return writes
  }

  /** Records an action's refusal for good (or answers the op's earlier answer, if it was processed). */
  async #recordAction(request: ActionRequest, op: OpIdentity, error: ZunoError): Promise<ActionResult> {
    const refusal = { ...op, epoch: request.epoch, storeKey: '', error: error.code, message: error.message }
    const outcome = await this.#storage.refuse(error.issues === undefined ? refusal : { ...refusal, issues: error.issues })
    if (outcome.type === 'processed') return { type: 'refused', error }
    return this.#actionAnswer(outcome)
  }

  /** The answer to an action's op, once this universe has applied its event. */
  async #actionAnswer(outcome: CommitOutcome): Promise<ActionResult> {
    // A retry's kept answer may need the event from before the start: once the history is read.
    if (outcome.type === 'answered' && this.#backfilling !== undefined) await this.#backfilling
    const log = this.#readyLog()
    switch (outcome.type) {
      case 'accepted': {
        await this.#reached(outcome.event.seq)
        return { type: 'accepted', changes: changesOf(outcome.event), cursor: outcome.event.id }
      }
      case 'unchanged':
        return { type: 'accepted', changes: [], cursor: formatEventId(log.epoch, outcome.seq) }
      case 'answered': {
        const { answer } = outcome
        if (answer.type === 'refused') return { type: 'refused', error: refusalError(answer) }
        if (answer.storeKey === '') return { type: 'accepted', changes: [], cursor: formatEventId(log.epoch, answer.seq) }
        const logged = log.at(answer.seq)?.event
        if (logged !== undefined) return { type: 'accepted', changes: changesOf(logged), cursor: formatEventId(log.epoch, answer.seq) }
        return { type: 'accepted', changes: [], cursor: formatEventId(log.epoch, answer.seq), duplicate: true }
      }
      case 'processed':
        return { type: 'accepted', changes: [], cursor: undefined, duplicate: true }
      case 'conflict':
        throw new Error('unreachable: a conflict is run again')
      default: {
        const answer = this.#answer('', outcome)
        if (answer.type !== 'refused') throw new Error(`unreachable: ${outcome.type}`)
        return answer
      }
    }
  }

  /**
   * Checks an op against the store and the schema, then commits it or records its refusal. Not
   * an async function: without a schema nothing here waits, and each await would cost a turn.
   */
  #decide(request: SyncRequest, op: OpIdentity, stateJson: string, byServer: boolean, patch?: Patch): Promise<ProposalResult> {
    try {
      this.#checkHealth()
    } catch (error) {
      return Promise.reject(error)
    }
    try {
      this.#admit(request.storeKey, stateJson, byServer)
    } catch (error) {
      if (!isZunoError(error)) return Promise.reject(error)
      return this.#record(request, op, error)
    }
    const schema = this.#specOf(request.storeKey)?.schema
    if (schema === undefined) return this.#commit(request, op, request.state, stateJson.length, patch)
    return this.#validated(schema, request).then(
      // A schema that changed the state changed what the patch says too.
      ({ state, stateBytes }) =>
        this.#commit(request, op, state, stateBytes ?? stateJson.length, stateBytes === undefined || patch === undefined ? patch : this.#diff(request.storeKey, state)),
      (error: unknown) => {
        if (!isZunoError(error)) throw error
        return this.#record(request, op, error)
      },
    )
  }

  /** Whether the store may take this state at all: it may be created, and the state fits. */
  #admit(storeKey: string, stateJson: string, byServer: boolean, createdBefore = 0): void {
    const existing = this.existing(storeKey)
    const exists = existing !== undefined && this.#isVisible(existing)
    // A store declared by its key is the clients' to write, deleted or not: allowStore speaks of the others.
    if (!byServer && !exists && !this.#declaredAtStart.has(storeKey) && !this.#allowStore(storeKey)) {
      throw new ZunoError('store_not_allowed', `Store ${JSON.stringify(storeKey)} may not be created`)
    }
    if (!exists && this.#storeCount() + createdBefore >= this.#maxStores) {
      throw new ZunoError('store_limit', `No more than ${this.#maxStores} stores`)
    }
    // UTF-16 length ≥ UTF-8 length / 3: only a state that might be too large is measured.
    if (this.#maxStateBytes !== undefined && stateJson.length * 3 > this.#maxStateBytes && utf8Length(stateJson) > this.#maxStateBytes) {
      throw new ZunoError('state_too_large', `A state may take at most ${this.#maxStateBytes} bytes`)
    }
  }

  /** How many stores exist for clients: written and not deleted, or declared by their key and never written. */
  #storeCount(): number {
    if (this.#hot === undefined) return this.#visibleCount
    let unwritten = 0
    // Declared stores are always in memory; at version 0 they were never written (a deletion moves the version on).
    for (const key of this.#declaredAtStart) if (this.existing(key)?.version === 0) unwritten += 1
    return this.#writtenCount + unwritten
  }

  /** What the store's schema makes of the state (what is stored, so it must be JSON and within the limits too); `stateBytes` only when it changed. */
  async #validated(schema: StandardSchemaV1, request: SyncRequest): Promise<{ state: unknown; stateBytes: number | undefined }> {
    const output = await validateState(schema, request.storeKey, request.state)
    if (output === request.state) return { state: output, stateBytes: undefined }
    const state = structuredClone(toJsonValue(output, request.storeKey))
    const stateBytes = utf8Length(JSON.stringify(state))
    if (this.#maxStateBytes !== undefined && stateBytes > this.#maxStateBytes) {
      throw new ZunoError('state_too_large', `A state may take at most ${this.#maxStateBytes} bytes`)
    }
    return { state, stateBytes }
  }

  /** Commits an op; not an async function, so an in-process storage's answer costs no turn of its own. */
  #commit(request: SyncRequest, op: OpIdentity, state: unknown, stateBytes: number, patch: Patch | undefined, deleted = false): Promise<ProposalResult> {
    const { storeKey, baseVersion, epoch } = request
    const { principal, clientId, opId, digest } = op
    let outcome: CommitOutcome | Promise<CommitOutcome>
    try {
      // Fields named, not spread: a spread copies through a slower generic path, once per proposal.
      const write: Write = deleted ? { storeKey, baseVersion, state: undefined, deleted } : { storeKey, baseVersion, state, stateBytes, patch }
      outcome = this.#storage.commit({ principal, clientId, opId, digest, epoch, write })
    } catch (error) {
      return Promise.reject(error)
    }
    // A whole state's answers carry whole states: its client may be one of before patches.
    return isPromiseLike(outcome) ? Promise.resolve(outcome).then((settled) => this.#settle(storeKey, settled)) : this.#settle(storeKey, outcome)
  }

  /**
   * The answer to a committed op, once this universe has applied its event (the answer must never
   * be ahead of the streams); with `base`, the op was a patch, and patches may answer for the state.
   */
  #settle(storeKey: string, outcome: CommitOutcome, base?: number): Promise<ProposalResult> {
    // A retry's kept answer may need the event from before the start: once the history is read.
    if (outcome.type === 'answered' && this.#backfilling !== undefined) return this.#backfilling.then(() => this.#answer(storeKey, outcome, base))
    if (outcome.type === 'accepted') {
      // Usually applied already (an in-process storage delivers as it commits): no wait then.
      const reached = this.#reached(outcome.event.seq)
      if (reached !== undefined) return reached.then(() => this.#answer(storeKey, outcome, base))
    }
    return Promise.resolve(this.#answer(storeKey, outcome, base))
  }

  /** The patch from a store's state here to `state`, as the server's own writes and actions stream it. */
  #diff(storeKey: string, state: unknown): Patch | undefined {
    return shorterThan(state, diff(this.#readForAction(storeKey).state, state, this.#specOf(storeKey)?.ids))
  }

  /** Records a refusal for good, unless the op was processed before (then that answer stands). Callers checked the storage's health. */
  async #record(request: SyncRequest | PatchRequest, op: OpIdentity, error: ZunoError): Promise<ProposalResult> {
    const { storeKey } = request
    const refusal = { ...op, epoch: request.epoch, storeKey, error: error.code, message: error.message }
    const outcome = await this.#storage.refuse(error.issues === undefined ? refusal : { ...refusal, issues: error.issues })
    // Processed long ago under this id, answer gone: the refusal stands, and tells nothing of the store.
    if (outcome.type === 'processed') return { type: 'refused', error }
    return this.#settle(storeKey, outcome)
  }

  #answer(storeKey: string, outcome: CommitOutcome, base?: number): ProposalResult {
    switch (outcome.type) {
      case 'accepted': {
        const { version, state } = outcome.event
        if (outcome.event.deleted) return { type: 'accepted', storeKey, version, state: undefined, deleted: true }
        const patches = this.#shorterPatches(storeKey, base, version, state)
        return patches === undefined ? { type: 'accepted', storeKey, version, state } : { type: 'accepted', storeKey, version, state, patches }
      }
      case 'answered':
        return this.#answerOf(outcome.answer)
      case 'processed': {
        const cell = this.existing(storeKey)
        return { type: 'accepted', storeKey, version: cell?.version ?? 0, state: cell?.get(), duplicate: true }
      }
      case 'conflict': {
        if (outcome.deleted) return { type: 'conflict', storeKey, version: outcome.version, state: undefined, deleted: true }
        // Version 0 is the declared initial state, which only the server knows.
        const state = outcome.version === 0 ? this.#initialOf(storeKey) : outcome.state
        const patches = this.#shorterPatches(storeKey, base, outcome.version, state)
        const conflict: ProposalResult = patches === undefined ? { type: 'conflict', storeKey, version: outcome.version, state } : { type: 'conflict', storeKey, version: outcome.version, state, patches }
        if (outcome.deletedAt !== undefined) conflict.deletedAt = outcome.deletedAt
        return conflict
      }
      case 'reused':
        return refused('op_id_reused', 'This opId was processed with another store or state; use the next opId')
      case 'unknown_client':
        return refused('unknown_client', 'This server keeps no record of this client: start again with a fresh client id from opId 1')
      case 'epoch_changed':
        return refused('epoch_changed', `The server's history is now epoch ${outcome.epoch}: reload its snapshot and propose again`)
      case 'unchanged':
        throw new Error('unreachable: only an action writes nothing')
    }
  }

  /** A kept answer, with the state it made: from the answer, the store, or the resume log, else the current truth. */
  #answerOf(answer: OpAnswer): ProposalResult {
    if (answer.type === 'refused') return refusalOf(answer)
    const { storeKey, version } = answer
    if ('state' in answer) return { type: 'accepted', storeKey, version, state: answer.state }
    const cell = this.existing(storeKey)
    if (cell !== undefined && cell.version === version) return { type: 'accepted', storeKey, version, state: cell.get() }
    const logged = this.#readyLog().at(answer.seq)?.event
    if (logged !== undefined && logged.storeKey === storeKey) return { type: 'accepted', storeKey, version, state: logged.state }
    return { type: 'accepted', storeKey, version: cell?.version ?? 0, state: cell?.get(), duplicate: true, opVersion: version }
  }

  #checkHealth(): void {
    const health = this.#storage.health?.()
    if (health !== undefined && !health.ok) throw new ZunoError('unavailable', `The storage cannot take writes: ${health.reason}`, { retryAfter: 1 })
  }

  /** Resolves once the event `seq` has been applied here. */
  #reached(seq: number): Promise<void> | undefined {
    if (this.#readyLog().lastSeq >= seq) return undefined
    return new Promise((resolve) => this.#waiters.add({ seq, resolve }))
  }

  /**
   * Waits until this universe has applied the event `eventId` names, for at most `timeoutMs`: a
   * client resuming from it saw it on another instance, and this one's follow of the storage is
   * behind; or, from before this universe started, until the storage's history is read (see
   * `Storage.recent`). `undefined` when there is nothing to wait for (applied already, another epoch, not an id).
   */
  catchUp(eventId: string, timeoutMs: number): Promise<void> | undefined {
    const target = parseEventId(eventId)
    const log = this.#readyLog()
    // From before the start, while the history is still being read: resumed once it is (a replay, not a snapshot).
    if (this.#backfilling !== undefined && target?.epoch === log.epoch && target.seq <= log.lastSeq && timeoutMs > 0) {
      const backfilling = this.#backfilling
      let timer: ReturnType<typeof setTimeout> | undefined
      return Promise.race([backfilling, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]).finally(() => clearTimeout(timer))
    }
    return this.#applied(eventId, timeoutMs)
  }

  /** Waits, for at most `timeoutMs`, until this universe has applied the event `eventId` names (not for its history: a read never needs it). */
  #applied(eventId: string, timeoutMs: number): Promise<void> | undefined {
    const target = parseEventId(eventId)
    const log = this.#readyLog()
    if (target === undefined || target.epoch !== log.epoch || target.seq <= log.lastSeq || !(timeoutMs > 0)) return undefined
    return new Promise((resolve) => {
      const waiter: Waiter = {
        seq: target.seq,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
      }
      // Past the bound the waiter goes, so ids from the far future cannot pile waiters up.
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        resolve()
      }, timeoutMs)
      this.#waiters.add(waiter)
    })
  }

  /** Id of the last event applied here: a snapshot taken now is current as of it. Throws `unavailable` before {@link ready}. */
  get cursor(): string {
    return this.#readyLog().cursor
  }

  /**
   * Every store (or those named, or those `readable` admits) as of the returned cursor; the states
   * are frozen. Throws `unavailable` until {@link ready} has settled: await it first.
   */
  snapshot(storeKeys?: readonly string[], readable?: (storeKey: string) => boolean): StateResponse {
    const cursor = this.cursor
    if (this.#hot !== undefined) {
      // Read lazily, a store not in memory would show as never written: refused, never shown wrong.
      if (storeKeys === undefined) throw new ZunoError('unavailable', 'On a storage read lazily, every store is read with hold(): await (await universe.hold()).snapshot()')
      const absent = storeKeys.find((key) => !this.#inMemory(key))
      if (absent !== undefined) throw new ZunoError('unavailable', `The store ${JSON.stringify(absent)} is not in memory: await universe.load(keys) first`)
    }
    const stores: Record<string, StoreState> = {}
    const cells = storeKeys === undefined ? this.cells() : storeKeys.map((key) => this.existing(key))
    for (const cell of cells) {
      if (cell === undefined || (readable !== undefined && !readable(cell.key))) continue
      if (this.#isVisible(cell)) {
        const deletedAt = this.#lastDeletion.get(cell.key)
        // Created again since a deletion: a replica that missed the deletion learns of it here.
        stores[cell.key] = deletedAt === undefined ? { version: cell.version, state: cell.get() } : { version: cell.version, state: cell.get(), deletedAt }
      }
      // A deleted store: its tombstone, so a client holding it learns it is gone and at which version.
      else if (this.#deleted.has(cell.key)) stores[cell.key] = { version: cell.version, deleted: true } as StoreState
    }
    // A family's store named but never written is at version 0, like a declared store.
    for (const key of storeKeys ?? []) {
      if (!Object.hasOwn(stores, key) && this.#isDeclared(key) && (readable === undefined || readable(key))) stores[key] = { version: 0, state: this.#initialOf(key) }
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
    this.#closed = true
    clearTimeout(this.#countTimer)
    this.#stopBus?.()
    this.#signalListeners.clear()
    this.#stopCommits?.()
    this.#stopResets?.()
    this.#listeners.clear()
    this.#resetListeners.clear()
    this.#wakeAll()
    if (this.#ownsStorage) await this.#storage.close()
  }

  /** Server writes go one at a time, in call order: their opIds must reach the storage in order. */
  protected writeStore(cell: StoreCell<unknown>, next: Updater<unknown>): Promise<number> {
    const write = this.#serverWrites.then(() => this.#writeAsServer(cell, next))
    this.#serverWrites = write.catch(() => {})
    return write
  }

  /**
   * Deletes a store, as server code: a logged change (its version moves on by one) that every
   * replica applies, showing the store's initial state. The key keeps its version (a tombstone),
   * so a later write creates the store again from there and versions never go back. Resolves with
   * the deletion's version; a store that does not exist (or is deleted already) is left as it is.
   */
  delete<K extends keyof TStores & string>(key: K): Promise<number>
  delete(key: TOtherKey): Promise<number>
  delete(key: string): Promise<number> {
    assertStoreKey(key)
    const write = this.#serverWrites.then(() => this.#withStores([key], () => this.#writeAsServer(this.cell(key), undefined, true)))
    this.#serverWrites = write.catch(() => {})
    return write
  }

  async #writeAsServer(cell: StoreCell<unknown>, next: Updater<unknown> | undefined, deleting = false): Promise<number> {
    if (!this.#started) await this.ready
    // A store server code holds (or is deleting, pinned) stays in memory once read.
    const reading = this.#ensure([cell.key])
    if (reading !== undefined) await reading
    const server = this.#server
    // The next id, used up only once the storage has processed the op (a conflict leaves it free).
    const opId = server.opId + 1
    for (let attempt = 0; attempt < SERVER_WRITE_ATTEMPTS; attempt++) {
      if (deleting && !this.#isVisible(cell)) return cell.version
      // The same checks as a client's proposal: JSON only, then the limits and the schema. A copy,
      // so freezing the truth never freezes the caller's own object.
      const state = deleting ? undefined : structuredClone(toJsonValue(applyUpdater(next as Updater<unknown>, cell.get()), cell.key))
      const stateJson = deleting ? '' : JSON.stringify(state)
      const request: SyncRequest = { storeKey: cell.key, baseVersion: cell.version, epoch: this.epoch, state, clientId: server.clientId, opId }
      let result: ProposalResult
      try {
        if (deleting) {
          this.#checkHealth()
          result = await this.#commit(request, identify(request, '', DELETION_DIGEST_PAYLOAD), undefined, 0, undefined, true)
        } else result = await this.#decide(request, identify(request, '', stateJson), stateJson, true, this.#diff(cell.key, state))
      } catch (error) {
        // In doubt: the op may or may not have landed. It is never sent again; later writes go under a fresh identity.
        this.#server = { clientId: newClientId(), opId: 0 }
        throw error
      }
      if (result.type === 'accepted') {
        server.opId = opId
        return result.version
      }
      if (result.type === 'conflict' && cell.version < result.version) {
        // Another instance's write, not yet applied here: give the stream a moment to bring it.
        await new Promise((resolve) => setTimeout(resolve, Math.min(attempt, 20)))
      }
      if (result.type === 'refused') {
        const { code } = result.error
        if (RECORDED_REFUSALS.has(code)) server.opId = opId
        if (code !== 'unknown_client' && code !== 'epoch_changed') throw result.error
        this.#server = { clientId: newClientId(), opId: 0 }
        return this.#writeAsServer(cell, next, deleting)
      }
    }
    throw new ZunoError('conflict', `Gave up writing ${JSON.stringify(cell.key)} after ${SERVER_WRITE_ATTEMPTS} conflicts`)
  }

  /**
   * Whether a store exists for clients: written, or declared by its exact key (a family's stores
   * exist once written), and not deleted since.
   */
  #isVisible(cell: StoreCell<unknown>): boolean {
    return (cell.version > 0 || this.#declaredAtStart.has(cell.key)) && (this.#deleted.size === 0 || !this.#deleted.has(cell.key))
  }

  /** Whether `key` has a declared initial state: its own, or its family's. */
  #isDeclared(key: string): boolean {
    return this.#specOf(key)?.declared === true
  }

  /** A store's state at version 0: its declared initial state, or its family's. */
  #initialOf(key: string): unknown {
    return this.#specOf(key)?.initial
  }

  /** The state a store shows before anything is known of it: its family's initial state for a family's store. */
  protected override initialOf(key: string): unknown {
    return this.#initialOf(key)
  }

  /**
   * Whether the app's rule for `storeKey` (its own `authorize`, or its family's, with the parameters
   * its pattern matched) lets `principal` read or write it; true when it has none. A rule that throws
   * refuses (logged). The sync server asks it beside its own `authorize` option: both must allow.
   */
  allows(principal: { id: string } | undefined, storeKey: string, action: 'read' | 'write'): boolean {
    const spec = this.#specOf(storeKey)
    const rule = spec?.authorize
    if (rule === undefined) return true
    const found = spec?.family?.match.exec(storeKey)
    // Own properties whatever the names (`__proto__` included), never the prototype.
    const params = Object.fromEntries(spec?.family?.names.map((name, i) => [name, found?.[i + 1] as string]) ?? [])
    try {
      return rule({ principal, params, action, storeKey }) === true
    } catch (error) {
      console.error(`[zuno] the authorize rule of ${JSON.stringify(storeKey)} threw; refusing to ${action} it`, error)
      return false
    }
  }

  /** Shows a committed state (a deleted store shows its initial one), counting the stores that exist. */
  #publish(key: string, state: unknown, version: number, deleted = false, existed?: boolean): void {
    // Empty unless actions ran ahead of a storage's follow (Redis): most commits skip the lookup.
    if (this.#ahead.size > 0) {
      const ahead = this.#ahead.get(key)
      if (ahead !== undefined && ahead.version <= version) this.#ahead.delete(key)
    }
    if (this.#hot !== undefined) {
      // Read lazily, stores are counted from what the storage says of each change. An entry written
      // by an older release does not say: a store in memory tells; for another, a version past 1
      // counts as a store that existed, wrong for one created again after a deletion, so the count
      // is asked again (`#recount`).
      let before = existed
      if (before === undefined && this.#inMemory(key)) before = !this.#deleted.has(key) && (this.existing(key)?.version ?? 0) > 0
      if (before === undefined) {
        before = version > 1
        if (before && !deleted) this.#guessed = true
      }
      if (before && deleted) this.#writtenCount -= 1
      else if (!before && !deleted) this.#writtenCount += 1
      // A store not in memory is read when next needed; a read in flight brings it on from the log.
      if (!this.#inMemory(key)) return
    }
    const cell = this.cell(key)
    const wasVisible = this.#isVisible(cell)
    if (deleted) {
      this.#deleted.add(key)
      this.#lastDeletion.set(key, version)
    } else if (this.#deleted.size > 0) this.#deleted.delete(key)
    cell.publish(deleted ? this.#initialOf(key) : state, version)
    const visible = this.#isVisible(cell)
    if (visible !== wasVisible) this.#visibleCount += visible ? 1 : -1
  }

  /** Shows several changes as one: every store has its new state before any subscriber hears of one. */
  #publishTogether(changes: readonly CommittedChange[], from = 0): void {
    const change = changes[from]
    if (change === undefined) return
    const cell = this.#inMemory(change.storeKey) ? this.cell(change.storeKey) : undefined
    if (cell === undefined) {
      this.#publish(change.storeKey, change.state, change.version, change.deleted === true, change.existed)
      this.#publishTogether(changes, from + 1)
      return
    }
    cell.deferNotifications(() => {
      this.#publish(change.storeKey, change.state, change.version, change.deleted === true, change.existed)
      this.#publishTogether(changes, from + 1)
    })
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
    const { changes } = event
    this.#rememberPatches(event)
    if (changes === undefined) {
      deepFreeze(event.state)
      this.#publish(event.storeKey, event.state, event.version, event.deleted === true, event.existed)
    } else {
      for (const change of changes) deepFreeze(change.state)
      this.#publishTogether(changes)
    }
    if (this.#guessed) {
      this.#guessed = false
      this.#guessedAt(event.seq)
    }
    this.#countsBySeq?.set(event.seq, this.#writtenCount)
    notifyEach(this.#listeners, entry, 'a commit listener of the universe')
    if (this.#waiters.size > 0) this.#wake(event.seq)
  }

  /** Notes a change whose store's existence was guessed, and asks the storage for a count once such changes stop. */
  #guessedAt(seq: number): void {
    this.#lastGuess = { seq, at: Date.now() }
    this.#scheduleRecount()
  }

  /** A count once guesses have stopped for a second, and `#recountMs` after the last count; never two at once. */
  #scheduleRecount(): void {
    if (this.#storage.count === undefined || this.#countTimer !== undefined || this.#recounting || this.#closed) return
    const check = () => {
      const wait = Math.max(this.#lastGuess.at + COUNT_QUIET_MS, this.#lastCountAt + this.#recountMs) - Date.now()
      if (wait > 0) {
        this.#countTimer = setTimeout(check, wait)
        return
      }
      this.#countTimer = undefined
      void this.#recount()
    }
    this.#countTimer = setTimeout(check, COUNT_QUIET_MS)
  }

  /**
   * Corrects the store count from the storage's own (`Storage.count`), as of the seq it counted at:
   * by what this universe's count was off then, which the changes it applied since leave as it is.
   */
  async #recount(): Promise<void> {
    const count = this.#storage.count
    const log = this.#log
    if (count === undefined || log === undefined || this.#closed) return
    const counts = new Map([[log.lastSeq, this.#writtenCount]])
    this.#countsBySeq = counts
    this.#recounting = true
    this.#lastCountAt = Date.now()
    let countedSeq = -1
    try {
      const counted = await withTimeout(count.call(this.#storage), READ_TIMEOUT_MS, 'The storage did not answer a count')
      // Of another history: its load counted the stores afresh.
      if (counted.epoch !== log.epoch || this.#log !== log) return
      await this.#applied(eventIdOf(log.epoch, counted.seq), READ_CATCH_UP_MS)
      if (this.#log !== log || log.lastSeq < counted.seq) throw new Error(`this instance did not reach seq ${counted.seq} in time`)
      // This universe's count as of the counted seq: the last one noted at or before it.
      let at = -1
      let then = 0
      for (const [seq, written] of counts) {
        if (seq <= counted.seq && seq > at) [at, then] = [seq, written]
      }
      if (at < 0) return
      this.#writtenCount += counted.storeCount - then
      countedSeq = counted.seq
    } catch (error) {
      console.error('[zuno] counting the stores failed; asking again later', error)
    } finally {
      if (this.#countsBySeq === counts) this.#countsBySeq = undefined
      this.#recounting = false
      // Guessed again after the count (or it failed): ask again once those stop too.
      if (this.#log === log && this.#lastGuess.seq > countedSeq) this.#scheduleRecount()
    }
  }

  #wake(seq: number): void {
    for (const waiter of this.#waiters) {
      if (waiter.seq > seq) continue
      this.#waiters.delete(waiter)
      waiter.resolve()
    }
  }

  #wakeAll(): void {
    const waiting = [...this.#waiters]
    this.#waiters.clear()
    for (const waiter of waiting) waiter.resolve()
  }

}

function refused(code: 'op_id_reused' | 'unknown_client' | 'epoch_changed', message: string): ProposalResult {
  return { type: 'refused', error: new ZunoError(code, message) }
}

/** Who sent an op and which op it is, with the digest that tells a retry from a reused id. */
/** What a deletion's digest is made of instead of a state's JSON, which is never empty. */
const DELETION_DIGEST_PAYLOAD = ''

function identify(request: SyncRequest | PatchRequest, principal: string, payload: string): OpIdentity {
  const { clientId, opId, storeKey, baseVersion } = request
  return { principal, clientId, opId, digest: opDigest(storeKey, baseVersion, payload) }
}

/** A store's patches of its latest versions, up to `version`, newest last, with their lengths as JSON. */
interface RecentPatches {
  version: number
  patches: Array<{ patch: Patch; bytes: number }>
  bytes: number
}

/** The most bytes of patches kept per store (past `patchHistory`'s count, the oldest go first). */
const PATCH_HISTORY_BYTES = 1024 * 1024

/** A patch applied: the state it made, and about how many bytes that state holds that its base does not share. */
interface Patched {
  /** The version the patch was applied to: what the commit compares. */
  base: number
  state: unknown
  patch: Patch
  /** The patch's length as JSON. */
  patchBytes: number
  heldBytes: number
}

/**
 * `patch` when it is shorter than `state` as JSON, else nothing: a longer one is not worth streaming
 * or keeping (whatever a client sent, what is kept of a store stays bounded by its state's size).
 */
function shorterThan(state: unknown, patch: Patch | undefined, patchBytes?: number): Patch | undefined {
  return patch !== undefined && jsonLongerThan(state, patchBytes ?? JSON.stringify(patch).length) ? patch : undefined
}

function patched({ version, state }: StoreRead, patch: Patch, patchBytes: number): Patched {
  const copies = { slots: 0, made: [] as object[] }
  const next = applyPatch(state, patch, copies)
  // A store with no initial state, deleted or never written, has nothing a patch could leave: a state is sent whole.
  if (next === undefined) throw new PatchError('Nothing to patch: the store has no state')
  // The base is frozen, so freezing what the patch made (its copies, the values it set) freezes the
  // new state: the commit's deep freeze then stops at its root instead of visiting every item kept.
  for (const container of copies.made) Object.freeze(container)
  for (const op of patch) if (op.length > 1) deepFreeze(op[1])
  // The resume log counts what each kept version holds on its own: the containers the patch
  // copied (a reference a slot) and the values it set (about their JSON).
  return { base: version, state: next, patch, patchBytes, heldBytes: copies.slots * 8 + patchBytes }
}

/** What a patch proposal's digest covers: its patch's JSON, marked so that no state's JSON spells the same ('~' starts none). */
function patchPayload(patchJson: string): string {
  return `~${patchJson}`
}

/** What an action's caller may reach, as `runAction` asks it: `forbidden` before the run sees or writes a store it may not. */
function allowedFor(caller: ActionCaller): ((key: string, access: 'read' | 'write') => void) | undefined {
  const { may } = caller
  if (may === undefined) return undefined
  return (key, access) => {
    if (!may(key, access)) throw new ZunoError('forbidden', `You may not ${access} ${JSON.stringify(key)}`)
  }
}

/** Who sent an action and which op it is; its digest covers the name and the arguments ('!' starts no store key, so no state proposal shares it). */
function actionIdentity(request: ActionRequest, principal: string): OpIdentity {
  const { clientId, opId, action, args, resentAfterMs } = request
  return { principal, clientId, opId, digest: opDigest(`!${action}`, 0, args === undefined ? '' : JSON.stringify(args)), resentAfterMs }
}

/** The changes of a committed event, as an answer and a `commit` frame carry them. */
function changesOf(event: CommittedEvent): StoreChange[] {
  return (event.changes ?? [event]).map(({ storeKey, version, state, deleted }) => (deleted ? ({ storeKey, version, deleted: true } as StoreChange) : { storeKey, version, state }))
}

/** What an action's throw means for its op: its own refusal, a store or schema's refusal, or a failure the server logs. */
function actionError(error: unknown, name: string): ZunoError {
  if (isZunoError(error) && (RECORDED_REFUSALS.has(error.code) || error.code === 'invalid_store_key')) {
    // A bad key inside an action is the action's failure, recorded like one.
    return error.code === 'invalid_store_key' ? new ZunoError('action_failed', error.message) : error
  }
  console.error(`[zuno] the action ${JSON.stringify(name)} threw`, error)
  return new ZunoError('action_failed', `The action ${JSON.stringify(name)} failed on the server`)
}

/** Validates an action's arguments; resolves with the schema's output, or throws `invalid_args` with the issues. */
async function validateArgs(schema: StandardSchemaV1, name: string, args: unknown): Promise<unknown> {
  try {
    return await validateState(schema, name, args)
  } catch (error) {
    if (!isZunoError(error) || error.code !== 'invalid_state') throw error
    const options = error.issues === undefined ? {} : { issues: error.issues }
    throw new ZunoError('invalid_args', `The arguments of ${JSON.stringify(name)} do not match its schema`, options)
  }
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

function refusalOf(answer: RefusalAnswer): ProposalResult {
  return { type: 'refused', error: refusalError(answer) }
}

function refusalError(answer: RefusalAnswer): ZunoError {
  const options = answer.issues === undefined ? {} : { issues: answer.issues }
  return new ZunoError(answer.error, answer.message, options)
}

/** What the sync server needs of a universe: any authoritative universe, whatever its store types. */
export type ServedUniverse = Pick<
  AuthoritativeUniverse,
  'ready' | 'cursor' | 'hold' | 'propose' | 'proposeAction' | 'refuse' | 'refuseAction' | 'snapshot' | 'since' | 'catchUp' | 'onCommit' | 'onReset' | 'allows' | 'storeRules' | 'signal' | 'onSignal'
>

/**
 * Creates the authoritative (server) universe. With `app` (see `defineZuno`), its stores are
 * declared with their initial states and schemas, and `store(key)` takes only their keys, typed;
 * with `schemas`, `store(key)` is typed from them.
 */
export function createUniverse<TStores extends Record<string, unknown>, TActions extends Record<string, unknown>>(
  options: Omit<UniverseOptions, 'schemas' | 'stores' | 'actions'> & {
    app: ZunoApp<TStores, TActions>
    stores?: Partial<TStores>
    /**
     * Server implementations of the app's actions, typed by their arguments. An action only the
     * server runs is declared in the app too (with its `args` schema and a `run` that does nothing on
     * the client), so every side knows its name and arguments.
     */
    actions?: { [K in keyof TActions]?: ServerAction<TStores, TActions[K]> }
  },
): AuthoritativeUniverse<TStores, never, TActions>
export function createUniverse<S extends Schemas = Schemas>(
  options?: UniverseOptions<S>,
): AuthoritativeUniverse<Schemas extends S ? Record<string, unknown> : StatesOf<S>>
export function createUniverse(options: Omit<UniverseOptions, 'actions'> & { app?: ZunoApp; actions?: object } = {}): AuthoritativeUniverse {
  // The overloads typed each server action by its app's stores and arguments; here they are all one kind.
  const { app, ...rest } = options as UniverseOptions & { app?: ZunoApp }
  if (app === undefined) return new AuthoritativeUniverse(rest)
  const { states, schemas, ids, merge } = appSetup(app, rest.stores, rest.schemas)
  const appActions = app.actions as Record<string, ActionSpec>
  return new AuthoritativeUniverse({ ...rest, stores: states, schemas, ids: { ...ids, ...rest.ids }, merge: [...merge, ...(rest.merge ?? [])], appActions, appStores: app.stores })
}

/** `promise`, or `unavailable` once it has taken longer than `ms` (what it settles to then is dropped). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ZunoError('unavailable', `${what} within ${ms} ms`, { retryAfter: 1 })), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}
